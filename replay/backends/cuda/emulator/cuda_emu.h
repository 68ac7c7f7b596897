// cuda_emu.h — run unchanged CUDA C++ kernel sources on the CPU (g++ -std=c++20), for tests without a GPU.
//
// Included by the loader (replay/backends/cuda/emulator/__init__.py) in front of a kernel file; it maps the CUDA
// built-ins onto the C++ standard library (design: shared/design/CUDA-ON-CPU.md §2):
//   - a launch runs the grid's blocks one after another (in order, or in an order the loader gives);
//     a block's threads are real OS threads (std::thread), created once per launch;
//   - __syncthreads is a std::barrier; a thread that returns drops out of it (as exited threads do on hardware);
//   - __shared__ is `static` (shared by the block's threads; correct since blocks run one at a time); the
//     loader rewrites `extern __shared__ T x[];` onto one per-launch buffer, poisoned with 0xFF at each block;
//   - warp intrinsics exchange values through per-warp slots guarded by a mask-aware barrier; reading a lane
//     that is absent, exited or outside the mask is undefined on a GPU: it returns poison and counts an error;
//   - atomics are std::atomic_ref.
// Nothing here says anything about GPU performance, and warps are not in lockstep.
// It does not depend on the CUDA toolkit's headers: the vector types are defined below.
#pragma once

#include <algorithm>
#include <atomic>
#include <barrier>
#include <bit>
#include <cfloat>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)  // sanitize="address": the unused tail of dynamic shared memory is poisoned
#include <sanitizer/asan_interface.h>
#endif

#define CUDA_EMULATOR 1

// ---- qualifiers -------------------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __align__(n) alignas(n)
#define __shared__ static
#define __constant__
#define __managed__

// NVRTC does not pre-include <math.h>: kernels guard INFINITY themselves; here <cmath> defines it already.
#ifndef INFINITY
#define INFINITY (__builtin_inff())
#endif
#ifndef NAN
#define NAN (__builtin_nanf(""))
#endif

// ---- vector types (aggregates, as in CUDA's vector_types.h) -------------------------------------------------
#define EMU_VEC1(T, N) struct N##1 { T x; };
#define EMU_VEC2(T, N, A) struct alignas(A) N##2 { T x, y; };
#define EMU_VEC3(T, N) struct N##3 { T x, y, z; };
#define EMU_VEC4(T, N, A) struct alignas(A) N##4 { T x, y, z, w; };
#define EMU_VECS(T, N, A2, A4) EMU_VEC1(T, N) EMU_VEC2(T, N, A2) EMU_VEC3(T, N) EMU_VEC4(T, N, A4)                  \
    inline N##1 make_##N##1(T x) { return {x}; }                                                               \
    inline N##2 make_##N##2(T x, T y) { return {x, y}; }                                                       \
    inline N##3 make_##N##3(T x, T y, T z) { return {x, y, z}; }                                               \
    inline N##4 make_##N##4(T x, T y, T z, T w) { return {x, y, z, w}; }
EMU_VECS(signed char, char, 2, 4)
EMU_VECS(unsigned char, uchar, 2, 4)
EMU_VECS(short, short, 4, 8)
EMU_VECS(unsigned short, ushort, 4, 8)
EMU_VECS(int, int, 8, 16)
EMU_VECS(unsigned int, uint, 8, 16)
EMU_VECS(long long, longlong, 16, 16)
EMU_VECS(unsigned long long, ulonglong, 16, 16)
EMU_VECS(float, float, 8, 16)
EMU_VECS(double, double, 16, 16)
#undef EMU_VECS
#undef EMU_VEC1
#undef EMU_VEC2
#undef EMU_VEC3
#undef EMU_VEC4

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return {x, y, z}; }
};

constexpr int warpSize = 32;

// ---- per-thread built-ins ---------------------------------------------------------------------------------
inline thread_local uint3 threadIdx{0, 0, 0};
inline thread_local uint3 blockIdx{0, 0, 0};
inline thread_local dim3 blockDim{1, 1, 1};
inline thread_local dim3 gridDim{1, 1, 1};

namespace emu {

// Bytes of dynamic shared memory a launch may ask for (sm_90's opt-in maximum, 227 KiB).
constexpr std::size_t kMaxDynamicShared = 232448;
alignas(256) inline unsigned char dynamic_shared[kMaxDynamicShared];

// Errors found during a launch (e.g. a shuffle reading an exited lane); the loader raises them in strict mode.
inline std::atomic<long> error_count{0};
inline std::mutex error_mutex;
inline std::string first_error;

inline void report_error(const std::string& what) {
    if (error_count.fetch_add(1) == 0) {
        std::lock_guard<std::mutex> lock(error_mutex);
        first_error = what;
    }
}

// One warp's exchange point: lanes write a value, wait until every live lane of the mask has arrived, read.
struct Warp {
    std::mutex m;
    std::condition_variable cv;
    uint32_t present = 0;  // lanes that exist in this block
    uint32_t live = 0;     // lanes that have not returned yet
    uint32_t arrived = 0;  // lanes waiting in the current exchange
    uint32_t want = 0;     // union of the masks given in the current exchange
    uint64_t generation = 0;
    uint32_t done_arrived = 0;
    uint64_t slot[32] = {};
    uint64_t done_slot[32] = {};

    void reset(uint32_t lanes) {
        present = live = lanes;
        arrived = want = 0;
        generation = 0;
    }
    void try_complete() {  // holds m
        if (arrived != 0 && (want & live & ~arrived) == 0) {
            done_arrived = arrived;
            std::memcpy(done_slot, slot, sizeof slot);
            arrived = want = 0;
            ++generation;
            cv.notify_all();
        }
    }
    void lane_exit(unsigned lane) {
        std::lock_guard<std::mutex> lock(m);
        live &= ~(1u << lane);
        try_complete();
    }
    uint32_t active() {
        std::lock_guard<std::mutex> lock(m);
        return live;
    }
};

struct LaunchConfig {  // filled by the Python loader (ctypes); keep in step with emulator/__init__.py
    uint32_t grid[3];
    uint32_t block[3];
    uint64_t shared_mem;
    const uint32_t* order;  // linear block ids in launch order, or null for 0, 1, 2, ...
};

struct Block;
struct SyncCompletion {
    Block* block;
    void operator()() noexcept;
};

struct Block {  // the state of the block now running; one per launch
    unsigned nthreads = 0;
    std::size_t shared_mem = 0;
    std::vector<Warp> warps;
    std::optional<std::barrier<SyncCompletion>> sync;
    std::atomic<int> sync_count{0};
    std::atomic<int> sync_arrivals{0};
    int sync_result_count = 0;
    int sync_result_arrivals = 0;

    explicit Block(unsigned n) : nthreads(n), warps((n + 31) / 32) {}
    void setup() {  // before each block: fresh barrier, warps, poisoned dynamic shared memory
        sync.reset();
        sync.emplace(static_cast<std::ptrdiff_t>(nthreads), SyncCompletion{this});
        for (std::size_t w = 0; w < warps.size(); ++w) {
            unsigned lanes = std::min<unsigned>(32, nthreads - 32 * static_cast<unsigned>(w));
            warps[w].reset(lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1));
        }
#if defined(__SANITIZE_ADDRESS__)
        // Under ASan, reading or writing past the launch's `shared_mem` bytes is reported (to 8-byte granules).
        ASAN_UNPOISON_MEMORY_REGION(dynamic_shared, shared_mem);
        ASAN_POISON_MEMORY_REGION(dynamic_shared + shared_mem, kMaxDynamicShared - shared_mem);
#endif
        if (shared_mem) std::memset(dynamic_shared, 0xFF, shared_mem);
    }
};

inline void SyncCompletion::operator()() noexcept {
    block->sync_result_count = block->sync_count.exchange(0);
    block->sync_result_arrivals = block->sync_arrivals.exchange(0);
}

inline thread_local Block* tl_block = nullptr;
inline thread_local unsigned tl_tid = 0;

inline Warp& my_warp() { return tl_block->warps[tl_tid / 32]; }
inline unsigned my_lane() { return tl_tid % 32; }

inline std::string where() {
    char buf[160];
    std::snprintf(buf, sizeof buf, "block (%u,%u,%u) thread (%u,%u,%u)", blockIdx.x, blockIdx.y, blockIdx.z,
                  threadIdx.x, threadIdx.y, threadIdx.z);
    return buf;
}

// Counting barrier across the block; returns how many of the arrived threads gave a true predicate.
inline int block_sync(int predicate, int* arrivals) {
    Block* b = tl_block;
    b->sync_count.fetch_add(predicate ? 1 : 0);
    b->sync_arrivals.fetch_add(1);
    b->sync->arrive_and_wait();
    if (arrivals) *arrivals = b->sync_result_arrivals;
    return b->sync_result_count;
}

// The warp exchange: publish `value`, wait for the mask's live lanes, return lane `src`'s value (or poison).
inline uint64_t warp_exchange(uint32_t mask, uint64_t value, int src, const char* what, uint32_t* arrived_out,
                              uint32_t* ballot_out = nullptr) {
    Warp& w = my_warp();
    unsigned lane = my_lane();
    std::unique_lock<std::mutex> lock(w.m);
    uint64_t g = w.generation;
    w.slot[lane] = value;
    w.arrived |= 1u << lane;
    w.want |= mask | (1u << lane);
    if (!(mask & (1u << lane))) report_error(std::string(what) + ": the calling lane is not in the mask at " + where());
    w.try_complete();
    w.cv.wait(lock, [&] { return w.generation != g; });
    // Read under the lock; the next exchange cannot complete while we hold it.
    if (arrived_out) *arrived_out = w.done_arrived & mask;
    if (ballot_out) {
        uint32_t bits = 0;
        for (int l = 0; l < 32; ++l)
            if ((w.done_arrived & mask & (1u << l)) && w.done_slot[l]) bits |= 1u << l;
        *ballot_out = bits;
    }
    if (src < 0) return value;
    if (!(w.done_arrived & mask & (1u << src))) {
        const char* why = !(w.present & (1u << src)) ? "absent"
                          : !(w.live & (1u << src))  ? "exited"
                          : !(mask & (1u << src))    ? "outside the mask"
                                                     : "not participating";
        report_error(std::string(what) + " read lane " + std::to_string(src) + " (" + why + ") at " + where());
        return ~uint64_t{0};
    }
    return w.done_slot[src];
}

template <class T>
inline uint64_t to_bits(T v) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "warp shuffles move values of at most 8 bytes");
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    return bits;
}
template <class T>
inline T from_bits(uint64_t bits) {
    T v;
    std::memcpy(&v, &bits, sizeof(T));
    return v;
}

// ---- the launch ------------------------------------------------------------------------------------------
inline std::mutex launch_mutex;

struct BoundaryCompletion {
    Block* block;
    void operator()() noexcept { block->setup(); }
};

template <class Body>
int run(const LaunchConfig* c, Body& body) {
    std::lock_guard<std::mutex> launch_lock(launch_mutex);
    const unsigned nthreads = c->block[0] * c->block[1] * c->block[2];
    const uint64_t nblocks = uint64_t{c->grid[0]} * c->grid[1] * c->grid[2];
    if (nthreads == 0 || nthreads > 1024 || nblocks == 0) return 1;
    if (c->shared_mem > kMaxDynamicShared) return 2;
    error_count = 0;
    {
        std::lock_guard<std::mutex> lock(error_mutex);
        first_error.clear();
    }
    Block block(nthreads);
    block.shared_mem = c->shared_mem;
    block.setup();
    std::barrier<BoundaryCompletion> boundary(static_cast<std::ptrdiff_t>(nthreads), BoundaryCompletion{&block});
    const dim3 grid(c->grid[0], c->grid[1], c->grid[2]);
    const dim3 blk(c->block[0], c->block[1], c->block[2]);

    auto thread_main = [&](unsigned t) {
        tl_block = &block;
        tl_tid = t;
        blockDim = blk;
        gridDim = grid;
        threadIdx = {t % blk.x, (t / blk.x) % blk.y, t / (blk.x * blk.y)};
        for (uint64_t i = 0; i < nblocks; ++i) {
            uint64_t b = c->order ? c->order[i] : i;
            blockIdx = {static_cast<unsigned>(b % grid.x), static_cast<unsigned>((b / grid.x) % grid.y),
                        static_cast<unsigned>(b / (uint64_t{grid.x} * grid.y))};
            try {
                body();
            } catch (const std::exception& e) {
                report_error(std::string("exception in kernel: ") + e.what() + " at " + where());
            } catch (...) {
                report_error("exception in kernel at " + where());
            }
            // The thread has returned: it no longer holds up __syncthreads or warp exchanges of this block.
            block.sync->arrive_and_drop();
            block.warps[t / 32].lane_exit(t % 32);
            boundary.arrive_and_wait();  // the last to arrive sets up the next block
        }
        tl_block = nullptr;
    };

    std::vector<std::thread> threads;
    threads.reserve(nthreads);
    try {
        for (unsigned t = 0; t < nthreads; ++t) threads.emplace_back(thread_main, t);
    } catch (...) {
        std::abort();  // a half-started block would deadlock; nothing sensible to return to
    }
    for (auto& th : threads) th.join();
    return 0;
}

template <class... A, std::size_t... I>
int launch_impl(void (*kernel)(A...), const LaunchConfig* c, void** args, std::index_sequence<I...>) {
    std::tuple<std::remove_cv_t<std::remove_reference_t<A>>...> values{
        *static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(args[I])...};
    auto body = [&] { std::apply(kernel, values); };
    return run(c, body);
}

template <class... A>
int launch(void (*kernel)(A...), const LaunchConfig* c, void** args) {
    return launch_impl(kernel, c, args, std::index_sequence_for<A...>{});
}

// Parameter sizes and pointer-ness, so the loader can check its own reading of the signature.
template <class... A>
int describe(void (*)(A...), int* sizes, int* pointers, int capacity) {
    int n = 0;
    ((n < capacity ? (sizes[n] = static_cast<int>(sizeof(std::remove_cv_t<std::remove_reference_t<A>>)),
                      pointers[n] = std::is_pointer_v<std::remove_cv_t<std::remove_reference_t<A>>> ? 1 : 0, ++n)
                   : ++n),
     ...);
    return static_cast<int>(sizeof...(A));
}

}  // namespace emu

extern "C" long emu_error_count() { return emu::error_count.load(); }
extern "C" int emu_first_error(char* buf, int size) {
    std::lock_guard<std::mutex> lock(emu::error_mutex);
    std::snprintf(buf, static_cast<std::size_t>(size), "%s", emu::first_error.c_str());
    return static_cast<int>(emu::first_error.size());
}
extern "C" int emu_abi_version() { return 1; }

// ---- synchronisation --------------------------------------------------------------------------------------
inline void __syncthreads() { emu::block_sync(0, nullptr); }
inline int __syncthreads_count(int predicate) { return emu::block_sync(predicate, nullptr); }
inline int __syncthreads_and(int predicate) {
    int arrivals = 0;
    int count = emu::block_sync(predicate, &arrivals);
    return count == arrivals;
}
inline int __syncthreads_or(int predicate) { return emu::block_sync(predicate, nullptr) != 0; }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_system() { std::atomic_thread_fence(std::memory_order_seq_cst); }

// ---- warp intrinsics --------------------------------------------------------------------------------------
inline void __syncwarp(unsigned mask = 0xffffffffu) { emu::warp_exchange(mask, 0, -1, "__syncwarp", nullptr); }
inline unsigned __activemask() { return emu::my_warp().active(); }
inline unsigned __lanemask_lt() { return (1u << emu::my_lane()) - 1; }

template <class T>
inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize) {
    int lane = static_cast<int>(emu::my_lane());
    int src = (lane & ~(width - 1)) + (src_lane & (width - 1));
    return emu::from_bits<T>(emu::warp_exchange(mask, emu::to_bits(var), src, "__shfl_sync", nullptr));
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
    int lane = static_cast<int>(emu::my_lane());
    int src = ((lane & (width - 1)) >= static_cast<int>(delta)) ? lane - static_cast<int>(delta) : -1;
    return emu::from_bits<T>(emu::warp_exchange(mask, emu::to_bits(var), src, "__shfl_up_sync", nullptr));
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
    int lane = static_cast<int>(emu::my_lane());
    int src = ((lane & (width - 1)) + static_cast<int>(delta) < width) ? lane + static_cast<int>(delta) : -1;
    return emu::from_bits<T>(emu::warp_exchange(mask, emu::to_bits(var), src, "__shfl_down_sync", nullptr));
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize) {
    int lane = static_cast<int>(emu::my_lane());
    int src = lane ^ lane_mask;
    // Lanes of a later width-segment are not readable: the caller keeps its own value (CUDA programming guide).
    if ((src & ~(width - 1)) > (lane & ~(width - 1)) || src >= 32) src = -1;
    return emu::from_bits<T>(emu::warp_exchange(mask, emu::to_bits(var), src, "__shfl_xor_sync", nullptr));
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
    uint32_t ballot = 0;
    emu::warp_exchange(mask, predicate ? 1 : 0, -1, "__ballot_sync", nullptr, &ballot);
    return ballot;
}
inline int __any_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }
inline int __all_sync(unsigned mask, int predicate) {
    uint32_t arrived = 0, ballot = 0;
    emu::warp_exchange(mask, predicate ? 1 : 0, -1, "__all_sync", &arrived, &ballot);
    return ballot == arrived;
}

// ---- atomics (std::atomic_ref) ----------------------------------------------------------------------------
#define EMU_ATOMIC_FETCH(NAME, OP, T) \
    inline T NAME(T* address, T value) { return std::atomic_ref<T>(*address).OP(value); }
EMU_ATOMIC_FETCH(atomicAdd, fetch_add, int)
EMU_ATOMIC_FETCH(atomicAdd, fetch_add, unsigned int)
EMU_ATOMIC_FETCH(atomicAdd, fetch_add, unsigned long long)
EMU_ATOMIC_FETCH(atomicAdd, fetch_add, float)
EMU_ATOMIC_FETCH(atomicAdd, fetch_add, double)
EMU_ATOMIC_FETCH(atomicSub, fetch_sub, int)
EMU_ATOMIC_FETCH(atomicSub, fetch_sub, unsigned int)
EMU_ATOMIC_FETCH(atomicAnd, fetch_and, int)
EMU_ATOMIC_FETCH(atomicAnd, fetch_and, unsigned int)
EMU_ATOMIC_FETCH(atomicAnd, fetch_and, unsigned long long)
EMU_ATOMIC_FETCH(atomicOr, fetch_or, int)
EMU_ATOMIC_FETCH(atomicOr, fetch_or, unsigned int)
EMU_ATOMIC_FETCH(atomicOr, fetch_or, unsigned long long)
EMU_ATOMIC_FETCH(atomicXor, fetch_xor, int)
EMU_ATOMIC_FETCH(atomicXor, fetch_xor, unsigned int)
EMU_ATOMIC_FETCH(atomicXor, fetch_xor, unsigned long long)
EMU_ATOMIC_FETCH(atomicExch, exchange, int)
EMU_ATOMIC_FETCH(atomicExch, exchange, unsigned int)
EMU_ATOMIC_FETCH(atomicExch, exchange, unsigned long long)
EMU_ATOMIC_FETCH(atomicExch, exchange, float)
#undef EMU_ATOMIC_FETCH

namespace emu {
template <class T, class F>
inline T atomic_update(T* address, F f) {  // compare-exchange loop; returns the old value
    std::atomic_ref<T> ref(*address);
    T old = ref.load();
    while (!ref.compare_exchange_weak(old, f(old))) {
    }
    return old;
}
}  // namespace emu

#define EMU_ATOMIC_MINMAX(T)                                                                                     \
    inline T atomicMax(T* a, T v) { return emu::atomic_update(a, [v](T o) { return o < v ? v : o; }); }       \
    inline T atomicMin(T* a, T v) { return emu::atomic_update(a, [v](T o) { return v < o ? v : o; }); }
EMU_ATOMIC_MINMAX(int)
EMU_ATOMIC_MINMAX(unsigned int)
EMU_ATOMIC_MINMAX(long long)
EMU_ATOMIC_MINMAX(unsigned long long)
#undef EMU_ATOMIC_MINMAX

inline unsigned int atomicInc(unsigned int* a, unsigned int limit) {
    return emu::atomic_update(a, [limit](unsigned int o) { return o >= limit ? 0u : o + 1; });
}
inline unsigned int atomicDec(unsigned int* a, unsigned int limit) {
    return emu::atomic_update(a, [limit](unsigned int o) { return (o == 0 || o > limit) ? limit : o - 1; });
}
#define EMU_ATOMIC_CAS(T)                                                     \
    inline T atomicCAS(T* address, T compare, T value) {                      \
        std::atomic_ref<T>(*address).compare_exchange_strong(compare, value); \
        return compare;                                                       \
    }
EMU_ATOMIC_CAS(int)
EMU_ATOMIC_CAS(unsigned int)
EMU_ATOMIC_CAS(unsigned long long)
EMU_ATOMIC_CAS(unsigned short)
#undef EMU_ATOMIC_CAS

// ---- bit casts and integer intrinsics ---------------------------------------------------------------------
inline float __int_as_float(int v) { return std::bit_cast<float>(v); }
inline int __float_as_int(float v) { return std::bit_cast<int>(v); }
inline float __uint_as_float(unsigned int v) { return std::bit_cast<float>(v); }
inline unsigned int __float_as_uint(float v) { return std::bit_cast<unsigned int>(v); }
inline double __longlong_as_double(long long v) { return std::bit_cast<double>(v); }
inline long long __double_as_longlong(double v) { return std::bit_cast<long long>(v); }
inline int __popc(unsigned int v) { return std::popcount(v); }
inline int __popcll(unsigned long long v) { return std::popcount(v); }
inline int __clz(int v) { return std::countl_zero(static_cast<unsigned int>(v)); }
inline int __clzll(long long v) { return std::countl_zero(static_cast<unsigned long long>(v)); }
inline int __ffs(int v) { return v == 0 ? 0 : std::countr_zero(static_cast<unsigned int>(v)) + 1; }
inline int __ffsll(long long v) { return v == 0 ? 0 : std::countr_zero(static_cast<unsigned long long>(v)) + 1; }
inline unsigned int __brev(unsigned int v) {
    unsigned int r = 0;
    for (int i = 0; i < 32; ++i) r |= ((v >> i) & 1u) << (31 - i);
    return r;
}
inline int __mul24(int a, int b) { return a * b; }
inline unsigned int __umul24(unsigned int a, unsigned int b) { return a * b; }
inline int __mulhi(int a, int b) { return static_cast<int>((static_cast<long long>(a) * b) >> 32); }
inline unsigned int __umulhi(unsigned int a, unsigned int b) {
    return static_cast<unsigned int>((static_cast<unsigned long long>(a) * b) >> 32);
}

// ---- cached loads / stores: plain memory here -------------------------------------------------------------
template <class T> inline T __ldg(const T* p) { return *p; }
template <class T> inline T __ldca(const T* p) { return *p; }
template <class T> inline T __ldcg(const T* p) { return *p; }
template <class T> inline T __ldcs(const T* p) { return *p; }
template <class T> inline T __ldlu(const T* p) { return *p; }
template <class T> inline T __ldcv(const T* p) { return *p; }
template <class T> inline void __stwb(T* p, T v) { *p = v; }
template <class T> inline void __stcg(T* p, T v) { *p = v; }
template <class T> inline void __stcs(T* p, T v) { *p = v; }
template <class T> inline void __stwt(T* p, T v) { *p = v; }

// ---- math: the fast intrinsics map to the exact functions (compare with tolerances) ------------------------
using std::isfinite;
using std::isinf;
using std::isnan;
using std::signbit;
inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return powf(10.0f, x); }
inline float exp10f(float x) { return powf(10.0f, x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline void __sincosf(float x, float* s, float* c) { *s = sinf(x); *c = cosf(x); }
inline float __tanhf(float x) { return tanhf(x); }
inline float __fdividef(float x, float y) { return x / y; }
inline float fdividef(float x, float y) { return x / y; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __saturatef(float x) { return x != x ? 0.0f : (x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x)); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
inline int __float2int_rn(float x) { return static_cast<int>(nearbyintf(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }
inline int __float2int_rd(float x) { return static_cast<int>(floorf(x)); }
inline int __float2int_ru(float x) { return static_cast<int>(ceilf(x)); }
inline unsigned int __float2uint_rn(float x) { return static_cast<unsigned int>(nearbyintf(x)); }
inline float __int2float_rn(int x) { return static_cast<float>(x); }
inline float __uint2float_rn(unsigned int x) { return static_cast<float>(x); }

// min / max as CUDA's overloads: fminf/fmaxf for floating point, the common type for integers.
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
inline double min(float a, double b) { return fmin(a, b); }
inline double max(float a, double b) { return fmax(a, b); }
inline double min(double a, float b) { return fmin(a, b); }
inline double max(double a, float b) { return fmax(a, b); }
template <class A, class B>
    requires(std::is_integral_v<A> && std::is_integral_v<B>)
inline std::common_type_t<A, B> min(A a, B b) {
    using C = std::common_type_t<A, B>;
    return static_cast<C>(a) < static_cast<C>(b) ? static_cast<C>(a) : static_cast<C>(b);
}
template <class A, class B>
    requires(std::is_integral_v<A> && std::is_integral_v<B>)
inline std::common_type_t<A, B> max(A a, B b) {
    using C = std::common_type_t<A, B>;
    return static_cast<C>(a) < static_cast<C>(b) ? static_cast<C>(b) : static_cast<C>(a);
}
template <class A, class B>
    requires(std::is_integral_v<A> && std::is_floating_point_v<B>)
inline B min(A a, B b) { return min(static_cast<B>(a), b); }
template <class A, class B>
    requires(std::is_integral_v<A> && std::is_floating_point_v<B>)
inline B max(A a, B b) { return max(static_cast<B>(a), b); }
template <class A, class B>
    requires(std::is_floating_point_v<A> && std::is_integral_v<B>)
inline A min(A a, B b) { return min(a, static_cast<A>(b)); }
template <class A, class B>
    requires(std::is_floating_point_v<A> && std::is_integral_v<B>)
inline A max(A a, B b) { return max(a, static_cast<A>(b)); }

inline void __trap() {
    emu::report_error("__trap() at " + emu::where());
}

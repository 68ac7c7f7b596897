// Toy kernels for the emulator's own tests: warp shuffles. blockDim.x a multiple of 32.
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif

__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
    return v;
}

// Row maxima and sums of x (rows, cols), one block per row: per-warp shuffles, then a second level through
// shared memory, read by warp 0 (xor butterfly for the max, down-shuffles for the sum).
extern "C" __global__ void row_max_sum(const float* __restrict__ x, float* __restrict__ row_max,
                                       float* __restrict__ row_sum, int cols) {
    __shared__ float warp_max[32];
    __shared__ float warp_total[32];
    const float* row = x + (size_t)blockIdx.x * cols;
    float m = -INFINITY, s = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        m = fmaxf(m, row[j]);
        s += row[j];
    }
    for (int lane_mask = 16; lane_mask > 0; lane_mask /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, lane_mask));
    s = warp_sum(s);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    if (lane == 0) { warp_max[warp] = m; warp_total[warp] = s; }
    __syncthreads();
    if (warp == 0) {
        m = lane < nwarps ? warp_max[lane] : -INFINITY;
        s = lane < nwarps ? warp_total[lane] : 0.0f;
        for (int lane_mask = 16; lane_mask > 0; lane_mask /= 2)
            m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, lane_mask));
        s = warp_sum(s);
        if (lane == 0) { row_max[blockIdx.x] = m; row_sum[blockIdx.x] = s; }
    }
}

// Inclusive prefix sums within each warp (shfl_up), a broadcast of lane 3 (shfl with width 8), and ballots.
extern "C" __global__ void warp_scan(const int* __restrict__ x, int* __restrict__ scan, int* __restrict__ bcast,
                                     unsigned* __restrict__ ballot, int* __restrict__ votes) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const int lane = threadIdx.x % 32;
    int v = x[i];
    for (int d = 1; d < 32; d *= 2) {
        int up = __shfl_up_sync(0xffffffffu, v, d);
        if (lane >= d) v += up;
    }
    scan[i] = v;
    bcast[i] = __shfl_sync(0xffffffffu, x[i], 3, 8);
    const unsigned b = __ballot_sync(0xffffffffu, x[i] > 0);
    const int any = __any_sync(0xffffffffu, x[i] > 0);
    const int all = __all_sync(0xffffffffu, x[i] > 0);
    __syncwarp();
    if (lane == 0) {
        ballot[i / 32] = b;
        votes[2 * (i / 32)] = any;
        votes[2 * (i / 32) + 1] = all;
    }
}

// Undefined on a GPU: lanes >= n return early, the others shuffle with a full mask and read them.
extern "C" __global__ void shuffle_exited_lane(const float* __restrict__ x, float* __restrict__ y, int n) {
    const int i = threadIdx.x;
    if (i >= n) return;
    y[i] = __shfl_down_sync(0xffffffffu, x[i], 1);
}

// Conv and local layers of the 2012 cuda-convnet: forward, data gradient, weight gradient, biases.
//
// Semantics are replay/backends/numpy_ref/conv.py's (which follows cudaconv2 filter_acts.cu, img_acts.cu,
// weight_acts.cu); the kernels here are our own implicit-GEMM formulation, not the 2012 ones.
//
// Layout (cuda-convnet, case index fastest): images (C, S, S, N); outputs (F, M, N) with M = Mx*Mx and
// module m = my*Mx + mx; conv filters (Cf*fs*fs, F), row (c*fs + u)*fs + v; local filters (M*Cf*fs*fs, F).
// Module (my, mx) reads image pixel (my*stride - padding + u, mx*stride - padding + v); reads outside the
// image are 0. Filter f belongs to group g = f / Fg (Fg = F/groups); its filter channel c is image channel
// row_channels[g*Cf + c] (the identity g*Cf + c, or the randSparse `conns`).
//
// Tiling: 256 threads (16 x 16) compute a 64 x 64 output tile, each thread a 4 x 4 register tile (rows
// ty + 16*i, columns tx + 16*j); the reduction runs in chunks of 16 staged in shared memory. No atomics and
// no dependence on block order: every output element is written by exactly one thread.

#define TILE 64
#define CHUNK 16
#define THREADS_X 16
#define THREADS_Y 16
#define PER_THREAD 4  // TILE / THREADS_X

// acc (a thread's 4×4 register tile) += rows ty + 16·i of `a` times columns tx + 16·j of `b`, summed over
// one chunk: the inner product of the three tiled GEMMs below.
__device__ __forceinline__ void multiply_chunk(const float (&a)[CHUNK][TILE], const float (&b)[CHUNK][TILE],
                                               float (&acc)[PER_THREAD][PER_THREAD], int ty, int tx) {
#pragma unroll
    for (int r = 0; r < CHUNK; ++r) {
        float left[PER_THREAD], right[PER_THREAD];
#pragma unroll
        for (int i = 0; i < PER_THREAD; ++i) left[i] = a[r][ty + THREADS_Y * i];
#pragma unroll
        for (int j = 0; j < PER_THREAD; ++j) right[j] = b[r][tx + THREADS_X * j];
#pragma unroll
        for (int i = 0; i < PER_THREAD; ++i)
#pragma unroll
            for (int j = 0; j < PER_THREAD; ++j) acc[i][j] += left[i] * right[j];
    }
}

// One image pixel as filter tap k of module (my, mx) of group g reads it, or 0 outside the image.
__device__ __forceinline__ float conv_patch_value(const float* images, const int* row_channels, int k, int g,
                                                  int my, int mx, int n, int img_size, int filter_size,
                                                  int padding, int stride, int filter_channels, int cases) {
    const int taps = filter_size * filter_size;
    const int c = k / taps;
    const int uv = k - c * taps;
    const int u = uv / filter_size;
    const int v = uv - u * filter_size;
    const int y = my * stride - padding + u;
    const int x = mx * stride - padding + v;
    if (y < 0 || y >= img_size || x < 0 || x >= img_size) {
        return 0.0f;
    }
    const int channel = row_channels[g * filter_channels + c];
    return images[((channel * img_size + y) * img_size + x) * cases + n];
}

// Forward (conv and local): targets (F, M, N) = filters^T (F, K) x patches (K, M*N) per group, K = Cf*fs*fs.
// grid.y = groups * ceil(Fg/64) filter tiles. Conv: grid.x = ceil(M*N/64) tiles of the flat (module, case)
// column index. Local (local != 0): grid.x = M * ceil(N/64), every tile inside one module, whose own filter
// block (offset m*K*F) it uses.
extern "C" __global__ void __launch_bounds__(256)
conv_filter_acts_kernel(const float* images, const float* filters, float* targets, const int* row_channels,
                 int img_size, int filter_size, int padding, int stride, int modules_x,
                 int cases, int num_filters, int groups, int filter_channels, int local) {
    __shared__ float filter_tile[CHUNK][TILE];
    __shared__ float patch_tile[CHUNK][TILE];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int tid = ty * THREADS_X + tx;
    const int modules = modules_x * modules_x;
    const int taps = filter_channels * filter_size * filter_size;
    const int group_filters = num_filters / groups;
    const int filter_tiles = (group_filters + TILE - 1) / TILE;
    const int g = blockIdx.y / filter_tiles;
    const int f0 = (blockIdx.y - g * filter_tiles) * TILE;

    // The (module, case) of a tile column: the flat index for conv, one module's cases for local.
    const int case_tiles = (cases + TILE - 1) / TILE;
    const int local_module = local ? (int)blockIdx.x / case_tiles : 0;
    const int column0 = local ? local_module * cases + (blockIdx.x - local_module * case_tiles) * TILE
                              : blockIdx.x * TILE;
    const int column_end = local ? (local_module + 1) * cases : modules * cases;
    const float* block_filters = filters + (local ? (size_t)local_module * taps * num_filters : 0);

    // The column this thread stages (TILE divides the thread count, so it is the same for every chunk).
    const int load_col = tid % TILE;
    const int load_row = tid / TILE;  // 0..3; the thread stages rows load_row + 4*r
    const int my_column = column0 + load_col;
    const bool load_valid = my_column < column_end;
    const int load_m = load_valid ? my_column / cases : 0;
    const int load_n = load_valid ? my_column - load_m * cases : 0;
    const int load_my = load_m / modules_x, load_mx = load_m - (load_m / modules_x) * modules_x;

    float acc[PER_THREAD][PER_THREAD];
    for (int i = 0; i < PER_THREAD; ++i)
        for (int j = 0; j < PER_THREAD; ++j) acc[i][j] = 0.0f;

    for (int k0 = 0; k0 < taps; k0 += CHUNK) {
        for (int r = load_row; r < CHUNK; r += (THREADS_X * THREADS_Y) / TILE) {
            const int k = k0 + r;
            const int f = f0 + load_col;
            filter_tile[r][load_col] = (k < taps && f < group_filters)
                ? block_filters[(size_t)k * num_filters + g * group_filters + f] : 0.0f;
            patch_tile[r][load_col] = (k < taps && load_valid)
                ? conv_patch_value(images, row_channels, k, g, load_my, load_mx, load_n, img_size,
                                   filter_size, padding, stride, filter_channels, cases)
                : 0.0f;
        }
        __syncthreads();
        multiply_chunk(filter_tile, patch_tile, acc, ty, tx);
        __syncthreads();
    }

    const int column_stride = modules * cases;  // one filter's outputs
    for (int i = 0; i < PER_THREAD; ++i) {
        const int f = f0 + ty + THREADS_Y * i;
        if (f >= group_filters) continue;
        for (int j = 0; j < PER_THREAD; ++j) {
            const int column = column0 + tx + THREADS_X * j;
            if (column >= column_end) continue;
            targets[(size_t)(g * group_filters + f) * column_stride + column] = acc[i][j];
        }
    }
}

// Conv data gradient, the transposed implicit GEMM in gather form: for group g, filter channel c and image
// pixel (y, x) of case n, the sum over filters f of g and taps (u, v) whose module (my, mx) reads that pixel
// (my = (y + padding - u)/stride when exact and in range) of filters[(c,u,v), f] * grads[f, m, n].
// Tile rows are filter channels c, columns the flat (pixel, case) index; the reduction index is
// k = (u*fs + v)*Fg + f. The result for (g, c) goes to target channel row_targets[g*Cf + c] of targets
// (rows*S*S, N): the image channel without randSparse; with it, the caller gives every repeat of a channel
// its own slot and sums the slots afterwards (so there are no atomics and no write conflicts).
// grid.x = ceil(S*S*N/64), grid.y = groups * ceil(Cf/64).
extern "C" __global__ void __launch_bounds__(256)
conv_img_acts_kernel(const float* grads, const float* filters, float* targets, const int* row_targets,
              int img_size, int filter_size, int padding, int stride, int modules_x, int cases,
              int num_filters, int groups, int filter_channels) {
    __shared__ float filter_tile[CHUNK][TILE];
    __shared__ float grad_tile[CHUNK][TILE];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int tid = ty * THREADS_X + tx;
    const int modules = modules_x * modules_x;
    const int group_filters = num_filters / groups;
    const int reduction = filter_size * filter_size * group_filters;
    const int channel_tiles = (filter_channels + TILE - 1) / TILE;
    const int g = blockIdx.y / channel_tiles;
    const int c0 = (blockIdx.y - g * channel_tiles) * TILE;
    const int pixels = img_size * img_size;
    const int columns = pixels * cases;
    const int column0 = blockIdx.x * TILE;

    const int load_col = tid % TILE;
    const int load_row = tid / TILE;
    const int my_column = column0 + load_col;
    const bool load_valid = my_column < columns;
    const int load_p = load_valid ? my_column / cases : 0;
    const int load_n = load_valid ? my_column - load_p * cases : 0;
    const int load_y = load_p / img_size, load_x = load_p - (load_p / img_size) * img_size;

    float acc[PER_THREAD][PER_THREAD];
    for (int i = 0; i < PER_THREAD; ++i)
        for (int j = 0; j < PER_THREAD; ++j) acc[i][j] = 0.0f;

    for (int k0 = 0; k0 < reduction; k0 += CHUNK) {
        for (int r = load_row; r < CHUNK; r += (THREADS_X * THREADS_Y) / TILE) {
            const int k = k0 + r;
            const bool k_valid = k < reduction;
            const int uv = k_valid ? k / group_filters : 0;
            const int f = k_valid ? k - uv * group_filters : 0;
            const int u = uv / filter_size, v = uv - (uv / filter_size) * filter_size;
            const int c = c0 + load_col;
            filter_tile[r][load_col] = (k_valid && c < filter_channels)
                ? filters[(size_t)((c * filter_size + u) * filter_size + v) * num_filters + g * group_filters + f]
                : 0.0f;
            float value = 0.0f;
            const int yy = load_y + padding - u, xx = load_x + padding - v;
            if (k_valid && load_valid && yy >= 0 && xx >= 0 && yy % stride == 0 && xx % stride == 0) {
                const int my = yy / stride, mx = xx / stride;
                if (my < modules_x && mx < modules_x) {
                    value = grads[((size_t)(g * group_filters + f) * modules + my * modules_x + mx) * cases + load_n];
                }
            }
            grad_tile[r][load_col] = value;
        }
        __syncthreads();
        multiply_chunk(filter_tile, grad_tile, acc, ty, tx);
        __syncthreads();
    }

    for (int i = 0; i < PER_THREAD; ++i) {
        const int c = c0 + ty + THREADS_Y * i;
        if (c >= filter_channels) continue;
        const int target = row_targets[g * filter_channels + c];
        for (int j = 0; j < PER_THREAD; ++j) {
            const int column = column0 + tx + THREADS_X * j;
            if (column >= columns) continue;
            targets[(size_t)target * columns + column] = acc[i][j];
        }
    }
}

// Local data gradient, direct form: one thread per (group channel e = g*Cf + c, pixel, case), grid-stride.
// Each module has its own filters, so the reduction is not one shared matrix; local layers are small.
extern "C" __global__ void __launch_bounds__(256)
local_img_acts_kernel(const float* grads, const float* filters, float* targets, const int* row_targets,
               int img_size, int filter_size, int padding, int stride, int modules_x, int cases,
               int num_filters, int groups, int filter_channels) {
    const int modules = modules_x * modules_x;
    const int group_filters = num_filters / groups;
    const int taps = filter_channels * filter_size * filter_size;
    const int pixels = img_size * img_size;
    const int total = groups * filter_channels * pixels * cases;
    for (int index = blockIdx.x * blockDim.x + threadIdx.x; index < total; index += gridDim.x * blockDim.x) {
        const int n = index % cases;
        const int p = (index / cases) % pixels;
        const int e = index / (cases * pixels);
        const int g = e / filter_channels, c = e - (e / filter_channels) * filter_channels;
        const int y = p / img_size, x = p - (p / img_size) * img_size;
        float sum = 0.0f;
        for (int u = 0; u < filter_size; ++u) {
            const int yy = y + padding - u;
            if (yy < 0 || yy % stride) continue;
            const int my = yy / stride;
            if (my >= modules_x) continue;
            for (int v = 0; v < filter_size; ++v) {
                const int xx = x + padding - v;
                if (xx < 0 || xx % stride) continue;
                const int mx = xx / stride;
                if (mx >= modules_x) continue;
                const int m = my * modules_x + mx;
                const float* w = filters + ((size_t)m * taps + (c * filter_size + u) * filter_size + v) * num_filters
                                 + g * group_filters;
                const float* d = grads + ((size_t)(g * group_filters) * modules + m) * cases + n;
                for (int f = 0; f < group_filters; ++f) {
                    sum += w[f] * d[(size_t)f * modules * cases];
                }
            }
        }
        targets[(size_t)row_targets[e] * pixels * cases + (size_t)p * cases + n] = sum;
    }
}

// Weight gradient (conv and local): for each run of partial_sum consecutive modules, the partial
// scale * sum over modules m of the run and cases n of patch[k, m, n] * grads[f, m, n], a GEMM (K x Fg per
// group) over the reduction index r = (m - run*partial_sum)*N + n. Block z takes runs_per_block
// consecutive runs (the last block fewer) and adds each run's finished partial into its running total in
// module order, which is what sum_partials_kernel would do with those partials; it writes the total to
// targets[z] (K, F). Conv with one block of runs writes dw; with several the caller adds the blocks'
// totals in order (sum_partials_kernel). Local is partial_sum = 1, runs_per_block = 1 and the filter offset
// is the run's module, so targets (M, K, F) is dw.
// grid.x = ceil(K/64) tap tiles, grid.y = groups * ceil(Fg/64) filter tiles,
// grid.z = ceil((M / partial_sum) / runs_per_block).
extern "C" __global__ void __launch_bounds__(256)
conv_weight_acts_kernel(const float* images, const float* grads, float* targets, const int* row_channels,
                 int img_size, int filter_size, int padding, int stride, int modules_x, int cases,
                 int num_filters, int groups, int filter_channels, int partial_sum, int runs_per_block,
                 float scale) {
    __shared__ float patch_tile[CHUNK][TILE];
    __shared__ float grad_tile[CHUNK][TILE];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int tid = ty * THREADS_X + tx;
    const int modules = modules_x * modules_x;
    const int taps = filter_channels * filter_size * filter_size;
    const int group_filters = num_filters / groups;
    const int filter_tiles = (group_filters + TILE - 1) / TILE;
    const int g = blockIdx.y / filter_tiles;
    const int f0 = (blockIdx.y - g * filter_tiles) * TILE;
    const int k0 = blockIdx.x * TILE;
    const int reduction = partial_sum * cases;
    const int run_begin = blockIdx.z * runs_per_block;
    const int run_end = min(run_begin + runs_per_block, modules / partial_sum);

    // Staging: consecutive threads take consecutive reduction rows (consecutive cases: coalesced reads).
    const int load_r = tid % CHUNK;
    const int load_col = tid / CHUNK;  // 0..15; the thread stages columns load_col + 16*q

    float* block_targets = targets + (size_t)blockIdx.z * taps * num_filters + g * group_filters;
    for (int run = run_begin; run < run_end; ++run) {
        const int first_module = run * partial_sum;
        float acc[PER_THREAD][PER_THREAD];
#pragma unroll
        for (int i = 0; i < PER_THREAD; ++i)
#pragma unroll
            for (int j = 0; j < PER_THREAD; ++j) acc[i][j] = 0.0f;
        for (int r0 = 0; r0 < reduction; r0 += CHUNK) {
            const int r = r0 + load_r;
            const bool r_valid = r < reduction;
            const int m = first_module + (r_valid ? r / cases : 0);
            const int n = r_valid ? r - (r / cases) * cases : 0;
            const int my = m / modules_x, mx = m - (m / modules_x) * modules_x;
            for (int q = load_col; q < TILE; q += (THREADS_X * THREADS_Y) / CHUNK) {
                const int k = k0 + q;
                patch_tile[load_r][q] = (r_valid && k < taps)
                    ? conv_patch_value(images, row_channels, k, g, my, mx, n, img_size, filter_size, padding,
                                       stride, filter_channels, cases)
                    : 0.0f;
                const int f = f0 + q;
                grad_tile[load_r][q] = (r_valid && f < group_filters)
                    ? grads[((size_t)(g * group_filters + f) * modules + m) * cases + n] : 0.0f;
            }
            __syncthreads();
            multiply_chunk(patch_tile, grad_tile, acc, ty, tx);
            __syncthreads();
        }
        // The run's partial, scaled as the 2012 partials were, joins the block's total in module order. The
        // total lives in the output, whose elements this thread alone reads and writes (a register total
        // spills under NVRTC for sm_90).
#pragma unroll
        for (int i = 0; i < PER_THREAD; ++i) {
            const int k = k0 + ty + THREADS_Y * i;
#pragma unroll
            for (int j = 0; j < PER_THREAD; ++j) {
                const int f = f0 + tx + THREADS_X * j;
                if (k >= taps || f >= group_filters) continue;
                float* out = block_targets + (size_t)k * num_filters + f;
                *out = (run == run_begin ? 0.0f : *out) + acc[i][j] * scale;
            }
        }
    }
}

// ---- 128 x 128 variants ---------------------------------------------------------------------------------
//
// The same three GEMMs with the same semantics, for large shapes: 256 threads (16 x 16) compute a 128 x 128
// output tile, each thread an 8 x 8 register tile made of 2 x 2 sub-tiles of 4 x 4 (rows 4*ty + i and
// 64 + 4*ty + i, columns likewise with tx), so that each reduction step reads 4 float4 from shared memory
// for 64 FMAs (the 64 x 64 kernels read 8 floats for 16). The reduction runs in chunks of BIG_CHUNK, double
// buffered: a thread fetches the next chunk's global values into registers before it multiplies the
// current chunk, stores them into the other buffer after, and one __syncthreads per chunk publishes them.
// The gather's index arithmetic is done once: per reduction index in a table (built at block start, in
// dynamic shared memory, or per block in registers), per staged column once per block; the inner loop has
// no integer division.

#define BIG_TILE 128
#define BIG_HALF 64
#define BIG_CHUNK 8
// Rows padded by one float4: the transposed stores of the data and weight gradients (8 reduction rows x 4
// columns per warp) hit 32 different banks, and float4 reads stay 16-byte aligned.
#define BIG_PITCH (BIG_TILE + 4)
#define BIG_THREADS 256
#define BIG_LOADS 4  // BIG_CHUNK * BIG_TILE / BIG_THREADS staged elements per thread and operand

// 4 consecutive floats of shared memory; one 16-byte load on the GPU. The CPU emulator reads them one by
// one (C++ forbids reading floats through a float4 lvalue; __CUDA_ARCH__ is undefined there).
__device__ __forceinline__ float4 shared_float4(const float* p) {
#ifdef __CUDA_ARCH__
    return *reinterpret_cast<const float4*>(p);
#else
    // A misaligned 16-byte shared load faults on the GPU but not here: make it fail in CI too.
    if (reinterpret_cast<unsigned long long>(p) % 16 != 0) __trap();
    return make_float4(p[0], p[1], p[2], p[3]);
#endif
}

// Row (or column) of sub-tile entry i (0..7) of thread coordinate t (0..15) in the 128 tile.
__device__ __forceinline__ int big_index(int i, int t) {
    return (i < 4 ? 0 : BIG_HALF) + 4 * t + (i & 3);
}

// acc += rows (big_index(i, ty)) of `a` times columns (big_index(j, tx)) of `b`, over one chunk.
__device__ __forceinline__ void multiply_big_chunk(const float (&a)[BIG_CHUNK][BIG_PITCH],
                                                   const float (&b)[BIG_CHUNK][BIG_PITCH], float (&acc)[8][8],
                                                   int ty, int tx) {
#pragma unroll
    for (int r = 0; r < BIG_CHUNK; ++r) {
        const float4 a0 = shared_float4(&a[r][4 * ty]), a1 = shared_float4(&a[r][BIG_HALF + 4 * ty]);
        const float4 b0 = shared_float4(&b[r][4 * tx]), b1 = shared_float4(&b[r][BIG_HALF + 4 * tx]);
        const float left[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
        const float right[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
        for (int i = 0; i < 8; ++i)
#pragma unroll
            for (int j = 0; j < 8; ++j) acc[i][j] += left[i] * right[j];
    }
}

__device__ __forceinline__ void zero_big_tile(float (&acc)[8][8]) {
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = 0.0f;
}

// Forward, 128 x 128: conv_filter_acts_kernel's GEMM and grid with 128 tiles (grid.x = ceil(M*N/128), or
// M * ceil(N/128) for local; grid.y = groups * ceil(Fg/128)). Dynamic shared memory: taps * 8 bytes, the
// tap table: entry k = (c, u, v) holds (((channel*S + u)*S + v)*N, u << 16 | v), the offset of tap k from
// its module's origin pixel and the tap's position for the border test.
extern "C" __global__ void __launch_bounds__(256)
conv_filter_acts_128_kernel(const float* images, const float* filters, float* targets, const int* row_channels,
                            int img_size, int filter_size, int padding, int stride, int modules_x,
                            int cases, int num_filters, int groups, int filter_channels, int local) {
    extern __shared__ int2 tap_table[];
    __align__(16) __shared__ float filter_tile[2][BIG_CHUNK][BIG_PITCH];
    __align__(16) __shared__ float patch_tile[2][BIG_CHUNK][BIG_PITCH];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int tid = ty * 16 + tx;
    const int modules = modules_x * modules_x;
    const int fs2 = filter_size * filter_size;
    const int taps = filter_channels * fs2;
    const int group_filters = num_filters / groups;
    const int filter_tiles = (group_filters + BIG_TILE - 1) / BIG_TILE;
    const int g = blockIdx.y / filter_tiles;
    const int f0 = (blockIdx.y - g * filter_tiles) * BIG_TILE;
    const int case_tiles = (cases + BIG_TILE - 1) / BIG_TILE;
    const int local_module = local ? (int)blockIdx.x / case_tiles : 0;
    const int column0 = local ? local_module * cases + (blockIdx.x - local_module * case_tiles) * BIG_TILE
                              : blockIdx.x * BIG_TILE;
    const int column_end = local ? (local_module + 1) * cases : modules * cases;
    const float* block_filters = filters + (local ? (size_t)local_module * taps * num_filters : 0);

    for (int k = tid; k < taps; k += BIG_THREADS) {
        const int c = k / fs2, uv = k - c * fs2;
        const int u = uv / filter_size, v = uv - u * filter_size;
        const int channel = row_channels[g * filter_channels + c];
        tap_table[k] = make_int2(((channel * img_size + u) * img_size + v) * cases, (u << 16) | v);
    }

    // The column this thread stages, for the whole reduction: its module's origin pixel and case.
    const int load_col = tid % BIG_TILE;
    const int load_row = tid / BIG_TILE;  // stages reduction rows load_row + 2*r
    const int column = column0 + load_col;
    const bool column_valid = column < column_end;
    const int m = column_valid ? column / cases : 0;
    const int n = column_valid ? column - m * cases : 0;
    const int my = m / modules_x, mx = m - my * modules_x;
    const int y0 = my * stride - padding, x0 = mx * stride - padding;
    const int column_base = (y0 * img_size + x0) * cases + n;  // negative where the module starts in the padding
    const bool filter_valid = f0 + load_col < group_filters;
    const float* filter_column = block_filters + g * group_filters + (filter_valid ? f0 + load_col : 0);

    float filter_next[BIG_LOADS], patch_next[BIG_LOADS];
    float acc[8][8];
    zero_big_tile(acc);
    __syncthreads();  // the tap table is complete

    const int chunks = (taps + BIG_CHUNK - 1) / BIG_CHUNK;
    for (int t = -1; t < chunks; ++t) {
        // Fetch chunk t + 1 into registers (t = -1: the prologue, nothing to multiply yet).
        if (t + 1 < chunks) {
#pragma unroll
            for (int r = 0; r < BIG_LOADS; ++r) {
                const int k = (t + 1) * BIG_CHUNK + load_row + 2 * r;
                const bool k_valid = k < taps;
                filter_next[r] = (k_valid && filter_valid) ? filter_column[(size_t)k * num_filters] : 0.0f;
                float value = 0.0f;
                if (k_valid && column_valid) {
                    const int2 tap = tap_table[k];
                    const int y = y0 + (tap.y >> 16), x = x0 + (tap.y & 0xffff);
                    if ((unsigned)y < (unsigned)img_size && (unsigned)x < (unsigned)img_size) {
                        value = images[column_base + tap.x];
                    }
                }
                patch_next[r] = value;
            }
        }
        if (t >= 0) multiply_big_chunk(filter_tile[t & 1], patch_tile[t & 1], acc, ty, tx);
        if (t + 1 < chunks) {
            const int buf = (t + 1) & 1;
#pragma unroll
            for (int r = 0; r < BIG_LOADS; ++r) {
                filter_tile[buf][load_row + 2 * r][load_col] = filter_next[r];
                patch_tile[buf][load_row + 2 * r][load_col] = patch_next[r];
            }
            // Publishes buffer t + 1; and the multiply of chunk t - 1 (the other buffer, read by every thread
            // before this barrier of the previous step) is done before anyone overwrites it next step.
            __syncthreads();
        }
    }

    const int column_stride = modules * cases;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const int f = f0 + big_index(i, ty);
        if (f >= group_filters) continue;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const int col = column0 + big_index(j, tx);
            if (col >= column_end) continue;
            targets[(size_t)(g * group_filters + f) * column_stride + col] = acc[i][j];
        }
    }
}

// Conv data gradient, 128 x 128: conv_img_acts_kernel's gather GEMM (rows filter channels, columns the flat
// (pixel, case) index, reduction k = (u*fs + v)*Fg + f) and grid with 128 tiles (grid.x = ceil(S*S*N/128),
// grid.y = groups * ceil(Cf/128)). Dynamic shared memory: fs*fs*Fg * 8 bytes, the tap table: entry k holds
// ((f*M - (u/stride)*Mx - v/stride)*N, u/stride << 24 | v/stride << 16 | u%stride << 8 | v%stride). A pixel
// (y, x) is read by tap (u, v) exactly when (y + padding - u) and (x + padding - v) are multiples of the
// stride, i.e. when u%stride and v%stride equal the pixel's residues; the module is then
// (qy - u/stride, qx - v/stride) with qy = (y + padding)/stride: no division per element. Needs fs < 256.
extern "C" __global__ void __launch_bounds__(256)
conv_img_acts_128_kernel(const float* grads, const float* filters, float* targets, const int* row_targets,
                         int img_size, int filter_size, int padding, int stride, int modules_x, int cases,
                         int num_filters, int groups, int filter_channels) {
    extern __shared__ int2 tap_table[];
    __align__(16) __shared__ float filter_tile[2][BIG_CHUNK][BIG_PITCH];
    __align__(16) __shared__ float grad_tile[2][BIG_CHUNK][BIG_PITCH];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int tid = ty * 16 + tx;
    const int modules = modules_x * modules_x;
    const int fs2 = filter_size * filter_size;
    const int group_filters = num_filters / groups;
    const int reduction = fs2 * group_filters;
    const int channel_tiles = (filter_channels + BIG_TILE - 1) / BIG_TILE;
    const int g = blockIdx.y / channel_tiles;
    const int c0 = (blockIdx.y - g * channel_tiles) * BIG_TILE;
    const int pixels = img_size * img_size;
    const int columns = pixels * cases;
    const int column0 = blockIdx.x * BIG_TILE;

    for (int k = tid; k < reduction; k += BIG_THREADS) {
        const int uv = k / group_filters, f = k - uv * group_filters;
        const int u = uv / filter_size, v = uv - u * filter_size;
        const int ud = u / stride, vd = v / stride;
        tap_table[k] = make_int2((f * modules - ud * modules_x - vd) * cases,
                                 (int)(((unsigned)ud << 24) | ((unsigned)vd << 16) | ((unsigned)(u - ud * stride) << 8)
                                       | (unsigned)(v - vd * stride)));
    }

    // The gradient column this thread stages: its pixel's stride quotients and residues, and case.
    const int load_col = tid % BIG_TILE;
    const int load_row = tid / BIG_TILE;  // stages reduction rows load_row + 2*r
    const int column = column0 + load_col;
    const bool column_valid = column < columns;
    const int p = column_valid ? column / cases : 0;
    const int n = column_valid ? column - p * cases : 0;
    const int y = p / img_size, x = p - y * img_size;
    const int qy = (y + padding) / stride, qx = (x + padding) / stride;
    const unsigned residues = ((unsigned)(y + padding - qy * stride) << 8) | (unsigned)(x + padding - qx * stride);
    const int column_base = (qy * modules_x + qx) * cases + n;
    const float* group_grads = grads + (size_t)g * group_filters * modules * cases;

    // The filter operand: thread stages reduction row k = chunk start + filter_k of channels
    // filter_c + 32*q; it walks (uv, f) of its k by increments (one division here, none per chunk).
    const int filter_k = tid % BIG_CHUNK;
    const int filter_c = tid / BIG_CHUNK;  // 0..31
    int walk_uv = filter_k / group_filters, walk_f = filter_k - walk_uv * group_filters;
    const float* group_filters_ptr = filters + g * group_filters;
    const size_t channel_stride = (size_t)fs2 * num_filters;  // one filter channel's rows

    float filter_next[BIG_LOADS], grad_next[BIG_LOADS];
    float acc[8][8];
    zero_big_tile(acc);
    __syncthreads();  // the tap table is complete

    const int chunks = (reduction + BIG_CHUNK - 1) / BIG_CHUNK;
    for (int t = -1; t < chunks; ++t) {
        if (t + 1 < chunks) {
            const int k0 = (t + 1) * BIG_CHUNK;
            const bool filter_k_valid = k0 + filter_k < reduction;
            const int filter_offset = walk_uv * num_filters + walk_f;
#pragma unroll
            for (int q = 0; q < BIG_LOADS; ++q) {
                const int c = c0 + filter_c + 32 * q;
                filter_next[q] = (filter_k_valid && c < filter_channels)
                    ? group_filters_ptr[c * channel_stride + filter_offset] : 0.0f;
            }
            walk_f += BIG_CHUNK;
            while (walk_f >= group_filters) {
                walk_f -= group_filters;
                ++walk_uv;
            }
#pragma unroll
            for (int r = 0; r < BIG_LOADS; ++r) {
                const int k = k0 + load_row + 2 * r;
                float value = 0.0f;
                if (k < reduction && column_valid) {
                    const int2 tap = tap_table[k];
                    const unsigned packed = (unsigned)tap.y;
                    const int my = qy - (int)(packed >> 24), mx = qx - (int)((packed >> 16) & 0xffu);
                    if ((packed & 0xffffu) == residues && (unsigned)my < (unsigned)modules_x
                        && (unsigned)mx < (unsigned)modules_x) {
                        value = group_grads[column_base + tap.x];
                    }
                }
                grad_next[r] = value;
            }
        }
        if (t >= 0) multiply_big_chunk(filter_tile[t & 1], grad_tile[t & 1], acc, ty, tx);
        if (t + 1 < chunks) {
            const int buf = (t + 1) & 1;
#pragma unroll
            for (int q = 0; q < BIG_LOADS; ++q) filter_tile[buf][filter_k][filter_c + 32 * q] = filter_next[q];
#pragma unroll
            for (int r = 0; r < BIG_LOADS; ++r) grad_tile[buf][load_row + 2 * r][load_col] = grad_next[r];
            __syncthreads();  // as in conv_filter_acts_128_kernel
        }
    }

#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const int c = c0 + big_index(i, ty);
        if (c >= filter_channels) continue;
        const int target = row_targets[g * filter_channels + c];
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const int col = column0 + big_index(j, tx);
            if (col >= columns) continue;
            targets[(size_t)target * columns + col] = acc[i][j];
        }
    }
}

// Where a weight-gradient thread is in its block's reduction: run, index r within the run (this thread's
// row of the chunk), and the (module, case) of r.
struct RunCursor {
    int run, r, m, n, my, mx;
};

__device__ __forceinline__ void cursor_start(RunCursor& at, int run, int row, int partial_sum, int cases,
                                             int modules_x) {
    at.run = run;
    at.r = row;
    const int whole = row / cases;
    at.m = run * partial_sum + whole;
    at.n = row - whole * cases;
    at.my = at.m / modules_x;
    at.mx = at.m - at.my * modules_x;
}

// To the same row of the next chunk: within the run by increments, else the start of the next run.
__device__ __forceinline__ void cursor_next(RunCursor& at, int row, int run_length, int partial_sum, int cases,
                                            int modules_x) {
    if (at.r - row + BIG_CHUNK >= run_length) {
        cursor_start(at, at.run + 1, row, partial_sum, cases, modules_x);
        return;
    }
    at.r += BIG_CHUNK;
    at.n += BIG_CHUNK;
    while (at.n >= cases) {
        at.n -= cases;
        ++at.m;
        if (++at.mx == modules_x) {
            at.mx = 0;
            ++at.my;
        }
    }
}

// Stage one chunk of the weight gradient's operands into registers: this thread's reduction row (at) for
// taps k0 + item + 32*q (image pixels, 0 outside the image) and filters f0 + item + 32*q (gradients); rows
// past the run's end are 0. Then moves the cursor to the next chunk.
__device__ __forceinline__ void fetch_weight_chunk(const float* images, const float* tile_grads,
                                                   const int2* block_taps, RunCursor& at,
                                                   float (&patch_next)[BIG_LOADS], float (&grad_next)[BIG_LOADS],
                                                   int row, int item, int run_length, int k0, int taps, int f0,
                                                   int group_filters, int filter_rows, int img_size, int padding,
                                                   int stride, int partial_sum, int cases, int modules_x) {
    const bool row_valid = at.r < run_length;
    const int y0 = at.my * stride - padding, x0 = at.mx * stride - padding;
    const int image_base = (y0 * img_size + x0) * cases + at.n;
    const int grad_offset = at.m * cases + at.n;
#pragma unroll
    for (int q = 0; q < BIG_LOADS; ++q) {
        const int kk = item + 32 * q;
        float value = 0.0f;
        if (row_valid && k0 + kk < taps) {
            const int2 tap = block_taps[kk];
            const int y = y0 + (tap.y >> 16), x = x0 + (tap.y & 0xffff);
            if ((unsigned)y < (unsigned)img_size && (unsigned)x < (unsigned)img_size) {
                value = images[image_base + tap.x];
            }
        }
        patch_next[q] = value;
        grad_next[q] = (row_valid && f0 + kk < group_filters) ? tile_grads[32 * q * filter_rows + grad_offset] : 0.0f;
    }
    cursor_next(at, row, run_length, partial_sum, cases, modules_x);
}

// Weight gradient, 128 x 128: conv_weight_acts_kernel's GEMM (rows taps k, columns filters, reduction
// (module of the run, case)), its runs per block and grid with 128 tiles (grid.x = ceil(K/128),
// grid.y = groups * ceil(Fg/128), grid.z = ceil((M / partial_sum) / runs_per_block)). A run's chunks never
// straddle runs (the last one is padded with zeros), so each run's sum is finished when it is added to the
// block's total, in module order.
extern "C" __global__ void __launch_bounds__(256)
conv_weight_acts_128_kernel(const float* images, const float* grads, float* targets, const int* row_channels,
                            int img_size, int filter_size, int padding, int stride, int modules_x, int cases,
                            int num_filters, int groups, int filter_channels, int partial_sum,
                            int runs_per_block, float scale) {
    __align__(16) __shared__ float patch_tile[2][BIG_CHUNK][BIG_PITCH];
    __align__(16) __shared__ float grad_tile[2][BIG_CHUNK][BIG_PITCH];
    __shared__ int2 block_taps[BIG_TILE];  // the block's taps as in conv_filter_acts_128_kernel's table
    __shared__ int tile_extent[2];         // taps and filters of the tile from its first row and column
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int tid = ty * 16 + tx;
    const int modules = modules_x * modules_x;
    const int fs2 = filter_size * filter_size;
    const int taps = filter_channels * fs2;
    const int group_filters = num_filters / groups;
    const int filter_tiles = (group_filters + BIG_TILE - 1) / BIG_TILE;
    const int g = blockIdx.y / filter_tiles;
    const int f0 = (blockIdx.y - g * filter_tiles) * BIG_TILE;
    const int k0 = blockIdx.x * BIG_TILE;
    const int run_length = partial_sum * cases;
    const int run_chunks = (run_length + BIG_CHUNK - 1) / BIG_CHUNK;
    const int run_begin = blockIdx.z * runs_per_block;
    const int run_end = min(run_begin + runs_per_block, modules / partial_sum);
    const int chunks = (run_end - run_begin) * run_chunks;

    if (tid < BIG_TILE) {
        const int k = k0 + tid;
        int2 tap = make_int2(0, 0);
        if (k < taps) {
            const int c = k / fs2, uv = k - c * fs2;
            const int u = uv / filter_size, v = uv - u * filter_size;
            const int channel = row_channels[g * filter_channels + c];
            tap = make_int2(((channel * img_size + u) * img_size + v) * cases, (u << 16) | v);
        }
        block_taps[tid] = tap;
    }
    if (tid == 0) {
        tile_extent[0] = taps - k0;
        tile_extent[1] = group_filters - f0;
    }

    // Both operands: thread stages reduction row `row` of the chunk, tile columns item + 32*q (coalesced:
    // consecutive threads read consecutive cases).
    const int row = tid % BIG_CHUNK;
    const int item = tid / BIG_CHUNK;  // 0..31
    // 32-bit offsets (as the 64 x 64 kernels' image offsets): 64-bit ones cost this kernel its second block
    // per SM in registers.
    const int filter_rows = modules * cases;  // one filter's gradient
    const float* tile_grads = grads + (size_t)(g * group_filters + f0 + item) * filter_rows;
    RunCursor at;
    cursor_start(at, run_begin, row, partial_sum, cases, modules_x);

    float patch_next[BIG_LOADS], grad_next[BIG_LOADS];
    float acc[8][8];
    zero_big_tile(acc);
    float* thread_targets = targets + (size_t)blockIdx.z * taps * num_filters + g * group_filters
                            + (k0 + 4 * ty) * num_filters + f0 + 4 * tx;
    __syncthreads();  // block_taps and tile_extent are complete

    fetch_weight_chunk(images, tile_grads, block_taps, at, patch_next, grad_next, row, item, run_length, k0, taps,
                       f0, group_filters, filter_rows, img_size, padding, stride, partial_sum, cases, modules_x);
#pragma unroll
    for (int q = 0; q < BIG_LOADS; ++q) {
        patch_tile[0][row][item + 32 * q] = patch_next[q];
        grad_tile[0][row][item + 32 * q] = grad_next[q];
    }
    __syncthreads();

    int t = 0;  // the chunk in the block's reduction
    for (int run = run_begin; run < run_end; ++run) {
        for (int chunk = 0; chunk < run_chunks; ++chunk, ++t) {
            const bool more = t + 1 < chunks;
            if (more) {
                fetch_weight_chunk(images, tile_grads, block_taps, at, patch_next, grad_next, row, item, run_length,
                                   k0, taps, f0, group_filters, filter_rows, img_size, padding, stride,
                                   partial_sum, cases, modules_x);
            }
            multiply_big_chunk(patch_tile[t & 1], grad_tile[t & 1], acc, ty, tx);
            if (more) {
                const int buf = (t + 1) & 1;
#pragma unroll
                for (int q = 0; q < BIG_LOADS; ++q) {
                    patch_tile[buf][row][item + 32 * q] = patch_next[q];
                    grad_tile[buf][row][item + 32 * q] = grad_next[q];
                }
                __syncthreads();  // as in conv_filter_acts_128_kernel
            }
        }
        // The run's partial, scaled as the 2012 partials were, joins the block's total in module order. The
        // total lives in the output, whose elements this thread alone reads and writes: a second 8x8 register
        // tile would cost the kernel its second block per SM.
        // The tile's extent is read back from shared memory here, each run: computed once outside the loop,
        // its 64 conditions would stay in registers across the loop and cost the second block per SM.
        const bool first_run = run == run_begin;
        const int rows_left = tile_extent[0] - 4 * ty, columns_left = tile_extent[1] - 4 * tx;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const int di = big_index(i, 0);
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                const int dj = big_index(j, 0);
                if (di < rows_left && dj < columns_left) {
                    float* out = thread_targets + di * num_filters + dj;
                    *out = (first_run ? 0.0f : *out) + acc[i][j] * scale;
                }
                acc[i][j] = 0.0f;
            }
        }
    }
}

// targets[i] = partials[0, i] + partials[1, i] + ... in order (the 2012 addSum of the partialSum runs, in
// module order, as numpy_ref adds them). Grid-stride, one thread per element.
extern "C" __global__ void __launch_bounds__(256)
sum_partials_kernel(const float* partials, float* targets, int parts, int size) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < size; i += gridDim.x * blockDim.x) {
        float sum = partials[i];
        for (int p = 1; p < parts; ++p) sum += partials[(size_t)p * size + i];
        targets[i] = sum;
    }
}

// targets[i] = acts[i] + biases[i / per]: per = M*N for shared conv biases (F, 1), N for unshared (F*M, 1).
extern "C" __global__ void __launch_bounds__(256)
add_row_bias_kernel(const float* acts, const float* biases, float* targets, int total, int per) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        targets[i] = acts[i] + biases[i / per];
    }
}

// targets[row] = scale * sum of grads[row*per ... row*per + per): one block per row (grid-stride over rows),
// a strided per-thread sum and a shared-memory tree; blockDim.x must be a power of two <= 256.
extern "C" __global__ void __launch_bounds__(256)
row_sums_kernel(const float* grads, float* targets, int rows, int per, float scale) {
    __shared__ float partial[256];
    for (int row = blockIdx.x; row < rows; row += gridDim.x) {
        float sum = 0.0f;
        for (int i = threadIdx.x; i < per; i += blockDim.x) sum += grads[(size_t)row * per + i];
        partial[threadIdx.x] = sum;
        __syncthreads();
        for (int width = blockDim.x / 2; width > 0; width /= 2) {
            if ((int)threadIdx.x < width) partial[threadIdx.x] += partial[threadIdx.x + width];
            __syncthreads();
        }
        if (threadIdx.x == 0) targets[row] = partial[0] * scale;
        __syncthreads();  // partial[0] is read before the next row overwrites it
    }
}

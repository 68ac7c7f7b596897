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
    for (int r = 0; r < CHUNK; ++r) {
        float left[PER_THREAD], right[PER_THREAD];
        for (int i = 0; i < PER_THREAD; ++i) left[i] = a[r][ty + THREADS_Y * i];
        for (int j = 0; j < PER_THREAD; ++j) right[j] = b[r][tx + THREADS_X * j];
        for (int i = 0; i < PER_THREAD; ++i)
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

// Weight gradient (conv and local): for each run `part` of partial_sum consecutive modules,
// targets[part, k, f] = scale * sum over modules m of the run and cases n of patch[k, m, n] * grads[f, m, n],
// a GEMM (K x Fg per group) over the reduction index r = (m - part*partial_sum)*N + n. Conv with one run
// writes dw; with several runs the caller adds the partials in module order (sum_partials_kernel); local is
// partial_sum = 1 and its filter offset is the run's module, so targets (M, K, F) is dw.
// grid.x = ceil(K/64) tap tiles, grid.y = groups * ceil(Fg/64) filter tiles, grid.z = M / partial_sum.
extern "C" __global__ void __launch_bounds__(256)
conv_weight_acts_kernel(const float* images, const float* grads, float* targets, const int* row_channels,
                 int img_size, int filter_size, int padding, int stride, int modules_x, int cases,
                 int num_filters, int groups, int filter_channels, int partial_sum, float scale) {
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
    const int part = blockIdx.z;
    const int reduction = partial_sum * cases;
    const int first_module = part * partial_sum;

    // Staging: consecutive threads take consecutive reduction rows (consecutive cases: coalesced reads).
    const int load_r = tid % CHUNK;
    const int load_col = tid / CHUNK;  // 0..15; the thread stages columns load_col + 16*q

    float acc[PER_THREAD][PER_THREAD];
    for (int i = 0; i < PER_THREAD; ++i)
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

    for (int i = 0; i < PER_THREAD; ++i) {
        const int k = k0 + ty + THREADS_Y * i;
        if (k >= taps) continue;
        for (int j = 0; j < PER_THREAD; ++j) {
            const int f = f0 + tx + THREADS_X * j;
            if (f >= group_filters) continue;
            targets[((size_t)part * taps + k) * num_filters + g * group_filters + f] = acc[i][j] * scale;
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

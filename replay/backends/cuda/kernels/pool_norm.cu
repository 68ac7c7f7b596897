// Pooling and response/contrast normalisation of the 2012 cuda-convnet, forward and backward.
//
// Semantics are replay/backends/numpy_ref/pool.py's and norm.py's (cc1 conv_util.cu: kLocalPool,
// kLocalMaxUndo, kLocalAvgUndo, kFCNorm, kCNorm_*, kRNormUndoPrelims, kFRNormUndo, kRNormUndo); read their
// docstrings for the window rules. Our kernels: one thread per output element, grid-stride loops, no shared
// memory, no atomics (the backward passes gather: each input pixel sums over the windows that hold it).
// Layout (C, S, S, N), case index fastest.

#define POOL_MAX 0
#define POOL_MAXABS 1
#define POOL_AVG 2
#define MAX_POOL_BASE (-2e38f)  // conv_util.cuh: MaxPooler.getBaseValue

// min(S, end) - max(0, begin) of output o's window along one axis; clamped at 0 for stride 1 and
// size_x >= 6 (kLocalPool2 counts the pixels it visits), as numpy_ref.pool._window_extent.
__device__ __forceinline__ int pool_extent(int o, int img_size, int size_x, int start, int stride) {
    const int begin = start + o * stride;
    const int extent = min(img_size, begin + size_x) - max(0, begin);
    return (stride == 1 && size_x >= 6) ? max(extent, 0) : extent;
}

// targets (C, Ox, Ox, N): max (fmaxf from -2e38), maxabs (later element wins a tie in |x|, from 0) or avg
// (in-image sum / extent_y*extent_x) over rows [start + oy*stride, + size_x) clipped to the image.
extern "C" __global__ void __launch_bounds__(256)
pool_forward_kernel(const float* images, float* targets, int channels, int img_size, int size_x, int start,
             int stride, int outputs_x, int cases, int kind) {
    const int outputs = outputs_x * outputs_x;
    const int total = channels * outputs * cases;
    for (int index = blockIdx.x * blockDim.x + threadIdx.x; index < total; index += gridDim.x * blockDim.x) {
        const int n = index % cases;
        const int o = (index / cases) % outputs;
        const int c = index / (cases * outputs);
        const int oy = o / outputs_x, ox = o - (o / outputs_x) * outputs_x;
        const int y0 = start + oy * stride, x0 = start + ox * stride;
        float acc = kind == POOL_MAX ? MAX_POOL_BASE : 0.0f;
        for (int y = max(y0, 0); y < min(y0 + size_x, img_size); ++y) {
            for (int x = max(x0, 0); x < min(x0 + size_x, img_size); ++x) {
                const float pixel = images[((size_t)(c * img_size + y) * img_size + x) * cases + n];
                if (kind == POOL_MAX) {
                    acc = fmaxf(acc, pixel);
                } else if (kind == POOL_MAXABS) {
                    acc = fabsf(acc) > fabsf(pixel) ? acc : pixel;
                } else {
                    acc += pixel;
                }
            }
        }
        if (kind == POOL_AVG) {
            acc /= (float)(pool_extent(oy, img_size, size_x, start, stride) *
                           pool_extent(ox, img_size, size_x, start, stride));
        }
        targets[index] = acc;
    }
}

// a / b rounded towards minus infinity (b > 0).
__device__ __forceinline__ int floor_div(int a, int b) {
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

// targets (C, S, S, N): every pixel sums over the outputs whose window holds it: max/maxabs
// dy * (pixel == pooled) (kLocalMaxUndo: every tied pixel gets the full dy), avg dy * (1/region size)
// (kLocalAvgUndo). pooled is not read for avg.
extern "C" __global__ void __launch_bounds__(256)
pool_backward_kernel(const float* images, const float* pooled, const float* grads, float* targets, int channels,
              int img_size, int size_x, int start, int stride, int outputs_x, int cases, int kind) {
    const int pixels = img_size * img_size;
    const int outputs = outputs_x * outputs_x;
    const int total = channels * pixels * cases;
    for (int index = blockIdx.x * blockDim.x + threadIdx.x; index < total; index += gridDim.x * blockDim.x) {
        const int n = index % cases;
        const int p = (index / cases) % pixels;
        const int c = index / (cases * pixels);
        const int y = p / img_size, x = p - (p / img_size) * img_size;
        // Outputs o with start + o*stride <= y < start + o*stride + size_x, clipped to [0, Ox).
        const int oy_first = max(0, floor_div(y - start - size_x, stride) + 1);
        const int oy_last = min(outputs_x - 1, floor_div(y - start, stride));
        const int ox_first = max(0, floor_div(x - start - size_x, stride) + 1);
        const int ox_last = min(outputs_x - 1, floor_div(x - start, stride));
        const float pixel = images[index];
        float sum = 0.0f;
        for (int oy = oy_first; oy <= oy_last; ++oy) {
            for (int ox = ox_first; ox <= ox_last; ++ox) {
                const size_t out = ((size_t)c * outputs + oy * outputs_x + ox) * cases + n;
                if (kind == POOL_AVG) {
                    const int region = pool_extent(oy, img_size, size_x, start, stride) *
                                       pool_extent(ox, img_size, size_x, start, stride);
                    sum += grads[out] * (float)(1.0 / (double)region);
                } else {
                    sum += (pixel == pooled[out]) * grads[out];
                }
            }
        }
        targets[index] = sum;
    }
}

// The cross-map window of map f: [f - before, f - before + size) ∩ [0, C), or its block when blocked.
__device__ __forceinline__ void cross_map_window(int f, int channels, int size, int before, int blocked,
                                                 int* lo, int* hi) {
    const int first = blocked ? (f / size) * size : f - before;
    *lo = max(first, 0);
    *hi = min(first + size, channels);
}

// Cross-map response normalisation (kFCNorm with cc2's minDiv): denoms = min_div + alpha * sum of x^2 over
// the window (before = size/2), targets = x * denoms^-pow. alpha = scale/size, computed by the caller.
extern "C" __global__ void __launch_bounds__(256)
cmrnorm_forward_kernel(const float* images, float* denoms, float* targets, int channels, int pixels, int cases,
                int size, float alpha, float pow_, float min_div, int blocked) {
    const int per_map = pixels * cases;
    const int total = channels * per_map;
    for (int index = blockIdx.x * blockDim.x + threadIdx.x; index < total; index += gridDim.x * blockDim.x) {
        const int f = index / per_map;
        const int rest = index - f * per_map;
        int lo, hi;
        cross_map_window(f, channels, size, size / 2, blocked, &lo, &hi);
        float sum = 0.0f;
        for (int j = lo; j < hi; ++j) {
            const float v = images[(size_t)j * per_map + rest];
            sum += v * v;
        }
        const float denom = sum * alpha + min_div;
        denoms[index] = denom;
        targets[index] = powf(denom, -pow_) * images[index];
    }
}

// Sum over the size×size window of map c starting `before` pixels up and left of (y, x), clipped to the
// image, of a (or of a² when square): the forward's sum of squares and the undo's transposed window.
__device__ __forceinline__ float spatial_window_sum(const float* a, int c, int y, int x, int n, int img_size,
                                                   int cases, int size, int before, bool square) {
    float sum = 0.0f;
    for (int yy = max(y - before, 0); yy < min(y - before + size, img_size); ++yy) {
        for (int xx = max(x - before, 0); xx < min(x - before + size, img_size); ++xx) {
            const float v = a[((size_t)(c * img_size + yy) * img_size + xx) * cases + n];
            sum += square ? v * v : v;
        }
    }
    return sum;
}

// Same-map (rnorm) and contrast (cnorm) normalisation (kCNorm_*): denoms = 1 + alpha * sum of inputs^2 over
// the size x size window (rows and columns [i - size/2, + size) clipped), targets = images * denoms^-pow.
// inputs is images for rnorm and the mean differences for cnorm. alpha = scale/size^2.
extern "C" __global__ void __launch_bounds__(256)
spatial_norm_forward_kernel(const float* inputs, const float* images, float* denoms, float* targets, int channels,
                     int img_size, int cases, int size, float alpha, float pow_) {
    const int pixels = img_size * img_size;
    const int total = channels * pixels * cases;
    const int before = size / 2;
    for (int index = blockIdx.x * blockDim.x + threadIdx.x; index < total; index += gridDim.x * blockDim.x) {
        const int n = index % cases;
        const int p = (index / cases) % pixels;
        const int c = index / (cases * pixels);
        const int y = p / img_size, x = p - (p / img_size) * img_size;
        const float sum = spatial_window_sum(inputs, c, y, x, n, img_size, cases, size, before, true);
        const float denom = sum * alpha + 1.0f;
        denoms[index] = denom;
        targets[index] = powf(denom, -pow_) * images[index];
    }
}

// kRNormUndoPrelims: scratch = coeff * dy * y / denoms, coeff = -2 * alpha * pow.
extern "C" __global__ void __launch_bounds__(256)
norm_undo_prelims_kernel(const float* grads, const float* acts, const float* denoms, float* scratch, int total,
                  float coeff) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        scratch[i] = grads[i] * coeff * acts[i] / denoms[i];
    }
}

// kFRNormUndo: targets_f = inputs_f * (sum of scratch_j over the maps j whose window holds f)
// + dy_f * denoms_f^-pow. The adjoint window starts size - 1 - size/2 below f (blocks are symmetric).
extern "C" __global__ void __launch_bounds__(256)
cmrnorm_undo_kernel(const float* inputs, const float* scratch, const float* denoms, const float* grads,
             float* targets, int channels, int pixels, int cases, int size, float pow_, int blocked) {
    const int per_map = pixels * cases;
    const int total = channels * per_map;
    for (int index = blockIdx.x * blockDim.x + threadIdx.x; index < total; index += gridDim.x * blockDim.x) {
        const int f = index / per_map;
        const int rest = index - f * per_map;
        int lo, hi;
        cross_map_window(f, channels, size, size - 1 - size / 2, blocked, &lo, &hi);
        float sum = 0.0f;
        for (int j = lo; j < hi; ++j) sum += scratch[(size_t)j * per_map + rest];
        targets[index] = sum * inputs[index] + powf(denoms[index], -pow_) * grads[index];
    }
}

// kRNormUndo (rnorm; cnorm with inputs = mean differences): the same with the transposed spatial window.
extern "C" __global__ void __launch_bounds__(256)
spatial_norm_undo_kernel(const float* inputs, const float* scratch, const float* denoms, const float* grads,
                  float* targets, int channels, int img_size, int cases, int size, float pow_) {
    const int pixels = img_size * img_size;
    const int total = channels * pixels * cases;
    const int before = size - 1 - size / 2;
    for (int index = blockIdx.x * blockDim.x + threadIdx.x; index < total; index += gridDim.x * blockDim.x) {
        const int n = index % cases;
        const int p = (index / cases) % pixels;
        const int c = index / (cases * pixels);
        const int y = p / img_size, x = p - (p / img_size) * img_size;
        const float sum = spatial_window_sum(scratch, c, y, x, n, img_size, cases, size, before, false);
        targets[index] = sum * inputs[index] + powf(denoms[index], -pow_) * grads[index];
    }
}

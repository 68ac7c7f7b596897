// Elementwise kernels shared by the dense layers: scaling (dropout at test time, eltsum), products with a
// mask (dropout backward), eltsum/eltmax (src/layer.cu EltwiseSumLayer, EltwiseMaxLayer; kEltwiseMaxGrad)
// and row-block copies (concat, src/layer.cu ConcatenationLayer / layer.py copyOffsets).
// Flat float32 arrays, grid-stride loops, any grid size gives the same result.

// y = a·x
extern "C" __global__ void scale_kernel(const float* x, float* y, int n, float a) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) y[i] = x[i] * a;
}

// y = x·m (elementwise product; dropout backward with the forward's mask)
extern "C" __global__ void multiply_kernel(const float* x, const float* m, float* y, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) y[i] = x[i] * m[i];
}

// y = y + c·x, the eltsum accumulation after y = c_0·x_0 (same order of operations as the reference).
extern "C" __global__ void add_scaled_kernel(const float* x, float* y, int n, float c) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        float p = x[i] * c;
        y[i] = y[i] + p;
    }
}

// z = max(a, b) with NaN propagating from either side (np.maximum).
extern "C" __global__ void maximum_kernel(const float* a, const float* b, float* z, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        float u = a[i], v = b[i];
        z[i] = (u != u || u > v) ? u : v;
    }
}

// kEltwiseMaxGrad (our sign): dx = dy·[x == y]; every input tied for the max gets the full gradient.
extern "C" __global__ void eltmax_backward_kernel(const float* dy, const float* x, const float* y, float* dx, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
        dx[i] = dy[i] * (x[i] == y[i] ? 1.f : 0.f);
}

// dst[dst_offset + i] = src[src_offset + i] for i < n: a block of rows of a (rows, N) array is contiguous.
extern "C" __global__ void copy_kernel(const float* src, float* dst, int n, int src_offset, int dst_offset) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
        dst[dst_offset + i] = src[src_offset + i];
}

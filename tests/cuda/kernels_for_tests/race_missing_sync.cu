// Deliberately racy (for the sanitizer tests): each thread reads its right neighbour's shared-memory slot
// with no __syncthreads between the write (line 9) and the read (line 11). TSan must name these lines.
#define THREADS 64
extern "C" __global__ void rotate_without_sync(const float* x, float* y, int n) {
    __shared__ float tile[THREADS];
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const unsigned t = threadIdx.x;
    // The write:
    tile[t] = i < n ? x[i] : 0.0f;
    // __syncthreads(); is missing here
    const float right = tile[(t + 1) % blockDim.x];
    if (i < n) y[i] = right;
}

// The same with the barrier: TSan must stay quiet.
extern "C" __global__ void rotate_with_sync(const float* x, float* y, int n) {
    __shared__ float tile[THREADS];
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const unsigned t = threadIdx.x;
    tile[t] = i < n ? x[i] : 0.0f;
    __syncthreads();
    const float right = tile[(t + 1) % blockDim.x];
    __syncthreads();  // tile is rewritten by the next block of this launch
    if (i < n) y[i] = right;
}

// Toy kernel for the emulator's own tests: a histogram of integer values in [0, bins) with a per-block
// histogram in dynamic shared memory (bins ints, given at launch), merged with atomicAdd.
extern "C" __global__ void histogram(const int* __restrict__ values, unsigned int* __restrict__ counts, int n,
                                     int bins) {
    extern __shared__ unsigned int local[];
    for (int b = threadIdx.x; b < bins; b += blockDim.x) local[b] = 0;
    __syncthreads();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        atomicAdd(&local[values[i]], 1u);
    __syncthreads();
    for (int b = threadIdx.x; b < bins; b += blockDim.x)
        if (local[b]) atomicAdd(&counts[b], local[b]);
}

// Copies its dynamic shared memory out without writing it: shows the poison (0xFF bytes).
extern "C" __global__ void read_uninitialised_shared(float* __restrict__ out, int n) {
    extern __shared__ __align__(16) float scratch[];
    for (int i = threadIdx.x; i < n; i += blockDim.x) out[blockIdx.x * n + i] = scratch[i];
}

// Writes which block ran k-th: a kernel whose result depends on block order (for the shuffle test).
extern "C" __global__ void record_block_order(unsigned int* __restrict__ counter, unsigned int* __restrict__ slot) {
    if (threadIdx.x == 0) slot[atomicAdd(counter, 1u)] = blockIdx.x;
}

// Every kind of scalar parameter, written back so the test sees the bytes arrived intact.
extern "C" __global__ void scalar_kinds(double* out, int a, unsigned int b, long long c, float d, double e,
                                        unsigned long long f) {
    out[0] = a; out[1] = b; out[2] = (double)c; out[3] = d; out[4] = e; out[5] = (double)f;
    out[6] = min(a, 3); out[7] = max(d, 2.5f); out[8] = __popc(b); out[9] = rsqrtf(4.0f);
}

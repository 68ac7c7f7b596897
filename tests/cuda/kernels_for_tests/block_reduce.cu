// Toy kernel for the emulator's own tests: sum of x (n floats) into *out, a shared-memory tree per block
// (blockDim.x a power of two) and one atomicAdd per block; also an integer count of positive entries.
extern "C" __global__ void block_reduce_sum(const float* __restrict__ x, float* __restrict__ out,
                                           int* __restrict__ positives, int n) {
    __shared__ float partial[1024];
    const unsigned t = threadIdx.x;
    float sum = 0.0f;
    int count = 0;
    for (int i = blockIdx.x * blockDim.x + t; i < n; i += gridDim.x * blockDim.x) {
        sum += x[i];
        count += x[i] > 0.0f;
    }
    partial[t] = sum;
    __syncthreads();
    for (unsigned stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if (t < stride) partial[t] += partial[t + stride];
        __syncthreads();
    }
    if (t == 0) atomicAdd(out, partial[0]);
    atomicAdd(positives, count);
}

// The same tree WITHOUT the __syncthreads between steps: a race, wrong whenever threads interleave.
extern "C" __global__ void block_reduce_sum_racy(const float* __restrict__ x, float* __restrict__ out, int n) {
    __shared__ float partial[1024];
    const unsigned t = threadIdx.x;
    partial[t] = (int)(blockIdx.x * blockDim.x + t) < n ? x[blockIdx.x * blockDim.x + t] : 0.0f;
    for (unsigned stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if (t < stride) partial[t] += partial[t + stride];
    }
    if (t == 0) atomicAdd(out, partial[0]);
}

// __syncthreads_count / _and / _or: per block, how many x > 0, whether all, whether any.
extern "C" __global__ void sync_predicates(const float* __restrict__ x, int* __restrict__ result, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const int positive = i < n && x[i] > 0.0f;
    const int count = __syncthreads_count(positive);
    const int all = __syncthreads_and(positive);
    const int any = __syncthreads_or(positive);
    if (threadIdx.x == 0) {
        result[3 * blockIdx.x + 0] = count;
        result[3 * blockIdx.x + 1] = all;
        result[3 * blockIdx.x + 2] = any;
    }
}

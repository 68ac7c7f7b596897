// Deliberately broken (for the compile-error tests): line 5 calls a function that does not exist.
extern "C" __global__ void broken(float* x, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        x[i] = no_such_function(x[i]);
}

// Deliberately out of bounds (for the sanitizer tests): the last thread reads x[n], one float past the end
// of the NumPy buffer, on line 7. ASan must name this line.
extern "C" __global__ void pair_sum_past_end(const float* x, float* y, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        // x[i + 1] is x[n] for the last thread: one past the end.
        y[i] = x[i] + x[i + 1];
    }
}

// The same, bounds-checked: ASan must stay quiet.
extern "C" __global__ void pair_sum_in_bounds(const float* x, float* y, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] + (i + 1 < n ? x[i + 1] : 0.0f);
}

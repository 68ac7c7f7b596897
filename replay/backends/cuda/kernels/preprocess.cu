// Parameter-free image layers on the data: blur, nailbed (bed of nails) and href (horizontal reflection).
// Images are (C·S·S, N) viewed as (C, S, S, N): element (c, y, x, n) at ((c·S + y)·S + x)·N + n.
// Semantics: numpy_ref/preprocess.py.

// One pass of the separable Gaussian blur (cc1/cc2 conv_util.cu kGaussianBlur): along x when horizontal,
// along y otherwise: out[i] = Σ_k g[k]·in[i + k − r], zero outside (no renormalisation at the border),
// taps summed in order k = 0..fs−1. Same size in and out.
extern "C" __global__ void blur_pass_kernel(const float* in, float* out, const float* g, int filter_size,
                                            int channels, int size, int cases, int horizontal) {
    int n = channels * size * size * cases;
    int radius = filter_size / 2;
    int step = horizontal ? cases : size * cases;  // distance between neighbours along the blurred axis
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        int pixel = i / cases;  // (c·S + y)·S + x
        int pos = horizontal ? pixel % size : (pixel / size) % size;
        float acc = 0.f;
        for (int k = 0; k < filter_size; ++k) {
            int q = pos + k - radius;
            if (q < 0 || q >= size) continue;
            float p = in[i + (k - radius) * step] * g[k];
            acc = acc + p;
        }
        out[i] = acc;
    }
}

// kBedOfNails: y[c, oy, ox, n] = x[c, start + oy·stride, start + ox·stride, n].
extern "C" __global__ void nailbed_forward_kernel(const float* x, float* y, int channels, int size, int cases,
                                                  int outputs_x, int start, int stride) {
    int n = channels * outputs_x * outputs_x * cases;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        int nc = i % cases, rest = i / cases;
        int ox = rest % outputs_x; rest /= outputs_x;
        int oy = rest % outputs_x;
        int c = rest / outputs_x;
        y[i] = x[((c * size + start + oy * stride) * size + start + ox * stride) * cases + nc];
    }
}

// kBedOfNails reversed after zeroing the target: every dx element is written (the sampled pixel's dy, else 0).
extern "C" __global__ void nailbed_backward_kernel(const float* dy, float* dx, int channels, int size, int cases,
                                                   int outputs_x, int start, int stride) {
    int n = channels * size * size * cases;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        int nc = i % cases, rest = i / cases;
        int px = rest % size; rest /= size;
        int py = rest % size;
        int c = rest / size;
        int dxp = px - start, dyp = py - start;
        float v = 0.f;
        if (dxp >= 0 && dyp >= 0 && dxp % stride == 0 && dyp % stride == 0) {
            int ox = dxp / stride, oy = dyp / stride;
            if (ox < outputs_x && oy < outputs_x) v = dy[((c * outputs_x + oy) * outputs_x + ox) * cases + nc];
        }
        dx[i] = v;
    }
}

// cc2 conv_util.cu kReflectH: y[c, py, px, n] = x[c, py, S − 1 − px, n]. Out of place (in != out), one thread
// per output element; the map is its own inverse, so the same kernel gives the backward from dy.
extern "C" __global__ void href_kernel(const float* in, float* out, int channels, int size, int cases) {
    int n = channels * size * size * cases;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        int nc = i % cases, pixel = i / cases;  // pixel = (c·S + py)·S + px
        int px = pixel % size;
        out[i] = in[(pixel - px + (size - 1 - px)) * cases + nc];
    }
}

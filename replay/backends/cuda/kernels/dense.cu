// Dense layers of the 2012 cuda-convnet as CUDA kernels: neurons, softmax, cost.logreg, dropout ("hs"),
// the fc bias gradient. Layout (SEMANTICS.md §2): activations are (features, N) float32, row-major, one
// column per case: element (f, n) at f·N + n. Semantics and sign: replay/backends/numpy_ref (dense.py,
// costs.py); every "backward" writes the DERIVATIVE of the cost (the original stores its negation).
//
// Rules for every kernel here: grid-stride loops (any grid size gives the same result), no dependence on
// block order, block sizes a multiple of 32 where warp shuffles are used, no fast-math intrinsics (the
// results must match the NumPy reference within ~1e-5 relative). Self-contained: NVRTC has no <math.h>.

// ------------------------------------------------------------------------------------------------ Philox
// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011), a counter-based
// generator: the random words of element i depend only on (key, counter), never on launch geometry.
// Mirrored bit for bit in replay/backends/cuda/philox.py.

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

struct philox_words { unsigned int v[4]; };

__device__ __forceinline__ void philox_mulhilo(unsigned int a, unsigned int b, unsigned int* hi, unsigned int* lo) {
    unsigned long long p = (unsigned long long)a * (unsigned long long)b;
    *hi = (unsigned int)(p >> 32);
    *lo = (unsigned int)p;
}

__device__ __forceinline__ philox_words philox4x32_10(unsigned int c0, unsigned int c1, unsigned int c2,
                                                      unsigned int c3, unsigned int k0, unsigned int k1) {
    for (int round = 0; round < 10; ++round) {
        if (round > 0) { k0 += PHILOX_W0; k1 += PHILOX_W1; }
        unsigned int hi0, lo0, hi1, lo1;
        philox_mulhilo(PHILOX_M0, c0, &hi0, &lo0);
        philox_mulhilo(PHILOX_M1, c2, &hi1, &lo1);
        unsigned int n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    }
    philox_words r;
    r.v[0] = c0; r.v[1] = c1; r.v[2] = c2; r.v[3] = c3;
    return r;
}

// A uniform float on (0, 1], as curand_uniform's range: the top 24 bits plus one, times 2^-24 (exact in
// float32, so the NumPy mirror reproduces it exactly).
__device__ __forceinline__ float philox_uniform(unsigned int word) {
    return (float)((word >> 8) + 1u) * 5.9604644775390625e-8f;
}

// Streams (the counter's third word) keep the users of one key apart.
#define STREAM_DROPOUT 0u
#define STREAM_NRELU 1u

// ---------------------------------------------------------------------------------------------- neurons
// include/neuron.cuh; one kernel with a type switch. Codes as replay/backends/cuda/dense.py NEURON_CODES.
#define NEURON_IDENT 0
#define NEURON_RELU 1
#define NEURON_NRELU 2
#define NEURON_LOGISTIC 3
#define NEURON_TANH 4
#define NEURON_BRELU 5
#define NEURON_SOFTRELU 6
#define NEURON_ABS 7
#define NEURON_SQUARE 8
#define NEURON_SQRT 9
#define NEURON_LINEAR 10
#define NEURON_DRELU 11

__device__ __forceinline__ float neuron_apply(int kind, float x, float a, float b) {
    switch (kind) {
    case NEURON_RELU: return x < 0.f ? 0.f : x;  // NaN passes through, as np.where(x < 0, 0, x)
    case NEURON_LOGISTIC: return 1.f / (1.f + expf(-x));
    case NEURON_TANH: return a * tanhf(b * x);  // = a·(2/(1+e^(−2bx)) − 1), the kernel's form
    case NEURON_BRELU: return x < 0.f ? 0.f : (x > a ? a : x);
    case NEURON_SOFTRELU: return x > 4.f ? x : logf(1.f + expf(x));  // identity above 4, as the original
    case NEURON_ABS: return fabsf(x);
    case NEURON_SQUARE: return x * x;
    case NEURON_SQRT: return sqrtf(x);  // NaN below 0
    case NEURON_LINEAR: return a * x + b;
    case NEURON_DRELU: return x - a * tanhf(x / a);
    default: return x;  // ident
    }
}

// y = f(x). nrelu: y = max(0, r + r·z), r = max(0, x), z ~ N(0, 1) from Philox (key k0, k1) through
// Box-Muller: words (w0, w1) of counter g give the normals of elements 4g and 4g+1 (cos, sin), (w2, w3)
// those of 4g+2 and 4g+3.
extern "C" __global__ void neuron_forward_kernel(const float* x, float* y, int n, int kind, float a, float b,
                                                 int k0, int k1) {
    int groups = (n + 3) / 4;
    for (int g = blockIdx.x * blockDim.x + threadIdx.x; g < groups; g += blockDim.x * gridDim.x) {
        float z[4] = {0.f, 0.f, 0.f, 0.f};
        if (kind == NEURON_NRELU) {
            philox_words w = philox4x32_10((unsigned int)g, 0u, STREAM_NRELU, 0u, (unsigned int)k0, (unsigned int)k1);
            for (int p = 0; p < 2; ++p) {
                float radius = sqrtf(-2.f * logf(philox_uniform(w.v[2 * p])));
                float angle = 6.2831853071795864769f * philox_uniform(w.v[2 * p + 1]);
                z[2 * p] = radius * cosf(angle);
                z[2 * p + 1] = radius * sinf(angle);
            }
        }
        for (int j = 0; j < 4; ++j) {
            int i = 4 * g + j;
            if (i >= n) break;
            float v = x[i];
            if (kind == NEURON_NRELU) {
                float r = v < 0.f ? 0.f : v;
                float noisy = r + r * z[j];
                y[i] = noisy < 0.f ? 0.f : noisy;
            } else {
                y[i] = neuron_apply(kind, v, a, b);
            }
        }
    }
}

// dx = f'(x)·dy, from x or from y as each gradient operator of include/neuron.cuh does. Masks are
// multiplied (not selected) so that NaN in dy propagates exactly as in the reference.
extern "C" __global__ void neuron_backward_kernel(const float* x, const float* y, const float* dy, float* dx,
                                                  int n, int kind, float a, float b) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        float d = dy[i], out;
        switch (kind) {
        case NEURON_RELU:
        case NEURON_NRELU: out = d * (y[i] > 0.f ? 1.f : 0.f); break;
        case NEURON_LOGISTIC: out = d * y[i] * (1.f - y[i]); break;
        case NEURON_TANH: out = d * b * (a - y[i] * y[i] / a); break;
        case NEURON_BRELU: out = d * ((y[i] > 0.f && y[i] < a) ? 1.f : 0.f); break;
        case NEURON_SOFTRELU: {
            float xi = x[i];
            if (xi > 4.f) { out = d; break; }
            float e = expf(xi > 4.f ? 4.f : xi);  // NaN stays NaN, as np.minimum(x, 4)
            out = d * (e / (1.f + e));
            break;
        }
        case NEURON_ABS: out = d * (x[i] > 0.f ? 1.f : -1.f); break;  // sign(0) = −1, as AbsGradientOperator
        case NEURON_SQUARE: out = d * 2.f * x[i]; break;
        case NEURON_SQRT: out = d / (2.f * y[i]); break;
        case NEURON_LINEAR: out = a * d; break;
        case NEURON_DRELU: { float t = tanhf(x[i] / a); out = d * (t * t); break; }
        default: out = d;  // ident
        }
        dx[i] = out;
    }
}

// ---------------------------------------------------------------------------------------------- softmax
// One thread per case (column); consecutive threads read consecutive columns (coalesced).
// src/layer.cu SoftmaxLayer::fpropActs: y = exp(x − max) / Σ exp(x − max) over the K rows.
extern "C" __global__ void softmax_forward_kernel(const float* x, float* y, int rows, int cols) {
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += blockDim.x * gridDim.x) {
        float m = x[c];
        for (int r = 1; r < rows; ++r) {
            float v = x[r * cols + c];
            m = (v > m || v != v) ? v : m;  // NaN-propagating max, as numpy's max
            if (m != m) break;
        }
        float s = 0.f;
        for (int r = 0; r < rows; ++r) {
            float e = expf(x[r * cols + c] - m);
            y[r * cols + c] = e;
            s += e;
        }
        for (int r = 0; r < rows; ++r) y[r * cols + c] = y[r * cols + c] / s;
    }
}

// src/layer_kernels.cu kSoftmaxGrad (our sign): dx_i = y_i·(dy_i − Σ_j y_j dy_j) per column.
extern "C" __global__ void softmax_backward_kernel(const float* y, const float* dy, float* dx, int rows, int cols) {
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += blockDim.x * gridDim.x) {
        float s = 0.f;
        for (int r = 0; r < rows; ++r) s += y[r * cols + c] * dy[r * cols + c];
        for (int r = 0; r < rows; ++r) dx[r * cols + c] = y[r * cols + c] * (dy[r * cols + c] - s);
    }
}

// ----------------------------------------------------------------------------------------- cost.logreg
// src/layer_kernels.cu kLogregCost / kMultiSoftmaxCost: per case n with label t, writes
//   log_y[n] = log y_t (no clamp: y_t = 0 gives −inf),
//   top1[n]  = [y_t == max] / #{j : y_j == max}            (a tie for the max shares the credit),
//   topk[n]  = 0 if b ≥ k, 1 if b + e ≤ k, else (k − b)/e  with b = #{y_j > y_t}, e = #{y_j == y_t}.
// The host sums the three (a small reduction). Comparisons are exact float32 comparisons; NaN compares
// false everywhere, as in the reference (and the max propagates NaN, as numpy's max does).
extern "C" __global__ void logreg_cost_kernel(const int* labels, const float* probs, float* log_y, float* top1,
                                              float* topk_credit, int rows, int cols, int topk) {
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += blockDim.x * gridDim.x) {
        int t = labels[c];
        float yt = probs[t * cols + c];
        float m = probs[c];
        for (int r = 1; r < rows; ++r) {
            float v = probs[r * cols + c];
            m = (v > m || v != v) ? v : m;
            if (m != m) break;
        }
        int num_max = 0, bigger = 0, equal = 0;
        for (int r = 0; r < rows; ++r) {
            float v = probs[r * cols + c];
            num_max += (v == m);
            bigger += (v > yt);
            equal += (v == yt);
        }
        log_y[c] = logf(yt);
        top1[c] = (yt == m) ? 1.f / (float)num_max : 0.f;
        int slots = topk - bigger;
        topk_credit[c] = slots <= 0 ? 0.f : (equal <= slots ? 1.f : (float)slots / (float)(equal > 1 ? equal : 1));
    }
}

// kLogregCostGrad (our sign): d/dy_j = −coeff·[j = t]/y_j, divided for EVERY j (0/0 = NaN off the label
// where y_j = 0, as the original).
extern "C" __global__ void logreg_backward_probs_kernel(const int* labels, const float* probs, float* dy,
                                                        int rows, int cols, float coeff) {
    int n = rows * cols;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        int r = i / cols, c = i - r * cols;
        float onehot = labels[c] == r ? 1.f : 0.f;
        dy[i] = (-coeff * onehot) / probs[i];
    }
}

// kLogregSoftmaxGrad (our sign): d/dx_j = coeff·(y_j − [j = t]), w.r.t. the softmax INPUT.
extern "C" __global__ void softmax_logreg_backward_kernel(const int* labels, const float* probs, float* dx,
                                                          int rows, int cols, float coeff) {
    int n = rows * cols;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        int r = i / cols, c = i - r * cols;
        float g = probs[i] * coeff;
        dx[i] = labels[c] == r ? g - coeff : g;
    }
}

// ------------------------------------------------------------------------------------------ dropout (hs)
// src/layer.cu HiddenSexLayer (training pass, enable): mask = [u < keep], u uniform on (0, 1] per element,
// y = x·mask, NO 1/keep rescaling. u of element i = word i mod 4 of Philox counter (i/4, 0, STREAM_DROPOUT, 0).
extern "C" __global__ void dropout_forward_kernel(const float* x, float* y, float* mask, int n, float keep,
                                                  int k0, int k1) {
    int groups = (n + 3) / 4;
    for (int g = blockIdx.x * blockDim.x + threadIdx.x; g < groups; g += blockDim.x * gridDim.x) {
        philox_words w = philox4x32_10((unsigned int)g, 0u, STREAM_DROPOUT, 0u, (unsigned int)k0, (unsigned int)k1);
        for (int j = 0; j < 4; ++j) {
            int i = 4 * g + j;
            if (i >= n) break;
            float m = philox_uniform(w.v[j]) < keep ? 1.f : 0.f;
            mask[i] = m;
            y[i] = x[i] * m;
        }
    }
}

// -------------------------------------------------------------------------------------- fc bias gradient
// src/layer.cu FCLayer::bpropBiases: G_b[r] = (1/N)·Σ_n dy[r, n]. One block per row (grid-stride over
// rows): strided partial sums, a shared-memory tree down to 32, then a full-mask warp shuffle (all 32 lanes
// of warp 0 are present: no thread leaves early). Needs blockDim.x a power of two, 64..1024.
#define BIAS_MAX_THREADS 1024
extern "C" __global__ void row_mean_kernel(const float* dy, float* out, int rows, int cols) {
    __shared__ float partial[BIAS_MAX_THREADS];
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        float s = 0.f;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) s += dy[r * cols + c];
        partial[threadIdx.x] = s;
        __syncthreads();
        for (int half = blockDim.x / 2; half >= 32; half /= 2) {
            if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
            __syncthreads();
        }
        if (threadIdx.x < 32) {
            float v = partial[threadIdx.x];
            for (int off = 16; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
            if (threadIdx.x == 0) out[r] = v / (float)cols;
        }
        __syncthreads();  // partial is reused by the next row
    }
}

// The 2012 momentum-SGD update in place (src/weights.cu Weights::update; replay/update.py sgd_update):
//   V ← mom·V − eps·grad;  V ← V − (wc·eps_decay)·W if wc > 0;  W ← W + V
// grad is OUR gradient (the derivative of cost/N), hence the minus. The caller skips the launch when the
// base rate is <= 0 and passes decay = float32(wc·eps_decay) (0 when wc <= 0), rounded once on the host as
// the reference rounds the Python product. Every product and sum is rounded separately (__fmul_rn /
// __fadd_rn forbid FMA contraction) so the result equals the float32 NumPy reference bit for bit.

#ifdef __CUDA_ARCH__
#define MUL_RN(a, b) __fmul_rn(a, b)
#define ADD_RN(a, b) __fadd_rn(a, b)
#define SUB_RN(a, b) __fsub_rn(a, b)
#else  // the CPU emulator: plain IEEE float operations (it must not contract them into FMAs)
#define MUL_RN(a, b) ((a) * (b))
#define ADD_RN(a, b) ((a) + (b))
#define SUB_RN(a, b) ((a) - (b))
#endif

extern "C" __global__ void sgd_update_kernel(float* w, float* v, const float* grad, int n, float eps, float mom,
                                             float decay, int use_decay) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        float wi = w[i];
        float vn = SUB_RN(MUL_RN(mom, v[i]), MUL_RN(eps, grad[i]));
        if (use_decay) vn = SUB_RN(vn, MUL_RN(decay, wi));
        v[i] = vn;
        w[i] = ADD_RN(wi, vn);
    }
}

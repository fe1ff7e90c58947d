// clusterlab's CUDA kernels: the hot ops of a training step (see src/nn/device/mod.rs).
//
// Compiled to PTX by build.rs (nvcc from the CUDA 13.0 wheels, `just build-cuda`) and loaded
// by candle's CUDA device at the first launch. Every kernel is a grid-stride loop over 64-bit
// indices, so no launch depends on 32-bit sizes, and every sum has a fixed order (no atomics):
// the results are the same bits from run to run on one GPU.
//
// The same file also compiles as C++ on the CPU (kernels_emu.h: blocks in series, the threads
// of a block as OS threads meeting at __syncthreads), which is how tests/cuda_emu.rs checks
// these kernels against our CPU kernels on a machine without a GPU.

#ifdef __CUDACC__
#include <cuda_bf16.h>
typedef __nv_bfloat16 bf16;
__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(bf16 v) { return __bfloat162float(v); }
__device__ __forceinline__ void store(float *p, float v) { *p = v; }
__device__ __forceinline__ void store(bf16 *p, float v) { *p = __float2bfloat16_rn(v); }
#else
#include "kernels_emu.h"
#endif

typedef unsigned long long u64;

#define GRID_STRIDE(i, total)                                                              \
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (total);                \
         i += (u64)gridDim.x * blockDim.x)

// Threads per block of the per-channel reductions (a power of two; the launch must match).
#define RED_THREADS 256

// ---------------------------------------------------------------------------------------
// im2col / col2im: a convolution as matrix products (src/nn/device/conv.rs).
//
// cols has K = C·k·k rows (row r = (c·k + ki)·k + kj, PyTorch's weight order) of P = OH·OW
// output positions per image; element (image, r, pos) sits at image·is + r·rs + pos. Two
// layouts: image-major (rs = P, is = K·P: one K×P matrix per image, the forward's batched
// product writes NCHW directly) and row-major (rs = N·P, is = P: one K×N·P matrix, the
// weight gradient's single product). Zero padding.

template <typename T>
__device__ void im2col(const T *x, T *cols, u64 n, u64 c, u64 h, u64 w, u64 k, u64 stride,
                       u64 pad, u64 oh, u64 ow, u64 rs, u64 is) {
    const u64 p = oh * ow, kk = c * k * k, total = n * kk * p;
    GRID_STRIDE(i, total) {
        // i runs over (image, r, pos) so that consecutive threads read neighbouring pixels.
        const u64 pos = i % p, r = (i / p) % kk, img = i / (p * kk);
        const u64 oy = pos / ow, ox = pos % ow;
        const u64 ch = r / (k * k), ki = (r / k) % k, kj = r % k;
        // Input coordinates, shifted by `pad` so that they stay unsigned.
        const u64 iy = oy * stride + ki, ix = ox * stride + kj;
        T v;
        store(&v, 0.0f);
        if (iy >= pad && iy < h + pad && ix >= pad && ix < w + pad) {
            v = x[((img * c + ch) * h + (iy - pad)) * w + (ix - pad)];
        }
        cols[img * is + r * rs + pos] = v;
    }
}

// The gradient of im2col: each input element gathers the columns it was copied to, in
// (ki, kj) order, summed in f32 (a bf16 gradient is rounded once, at the end).
template <typename T>
__device__ void col2im(const T *cols, T *dx, u64 n, u64 c, u64 h, u64 w, u64 k, u64 stride,
                       u64 pad, u64 oh, u64 ow, u64 rs, u64 is) {
    const u64 total = n * c * h * w;
    GRID_STRIDE(i, total) {
        const u64 xx = i % w, yy = (i / w) % h, ch = (i / (w * h)) % c, img = i / (w * h * c);
        float acc = 0.0f;
        for (u64 ki = 0; ki < k; ++ki) {
            const u64 ty = yy + pad;  // = oy·stride + ki
            if (ty < ki || (ty - ki) % stride != 0) continue;
            const u64 oy = (ty - ki) / stride;
            if (oy >= oh) continue;
            for (u64 kj = 0; kj < k; ++kj) {
                const u64 tx = xx + pad;
                if (tx < kj || (tx - kj) % stride != 0) continue;
                const u64 ox = (tx - kj) / stride;
                if (ox >= ow) continue;
                const u64 r = (ch * k + ki) * k + kj;
                acc += to_f(cols[img * is + r * rs + oy * ow + ox]);
            }
        }
        store(&dx[i], acc);
    }
}

// (N, C, P) → (C, N·P): an NCHW gradient as the left operand of the weight gradient's
// product (row co holds image n's P positions at columns n·P ..).
template <typename T>
__device__ void nchw_to_rows(const T *x, T *rows, u64 n, u64 c, u64 p) {
    GRID_STRIDE(i, n * c * p) {
        const u64 pos = i % p, ch = (i / p) % c, img = i / (p * c);
        rows[(ch * n + img) * p + pos] = x[i];
    }
}

#define CONV_KERNELS(T, S)                                                                 \
    extern "C" __global__ void cl_im2col_##S(const T *x, T *cols, u64 n, u64 c, u64 h,      \
                                             u64 w, u64 k, u64 stride, u64 pad, u64 oh,    \
                                             u64 ow, u64 rs, u64 is) {                     \
        im2col(x, cols, n, c, h, w, k, stride, pad, oh, ow, rs, is);                       \
    }                                                                                      \
    extern "C" __global__ void cl_col2im_##S(const T *cols, T *dx, u64 n, u64 c, u64 h,     \
                                             u64 w, u64 k, u64 stride, u64 pad, u64 oh,    \
                                             u64 ow, u64 rs, u64 is) {                     \
        col2im(cols, dx, n, c, h, w, k, stride, pad, oh, ow, rs, is);                      \
    }                                                                                      \
    extern "C" __global__ void cl_nchw_to_rows_##S(const T *x, T *rows, u64 n, u64 c,       \
                                                   u64 p) {                                \
        nchw_to_rows(x, rows, n, c, p);                                                    \
    }

CONV_KERNELS(float, f32)
CONV_KERNELS(bf16, bf16)

// ---------------------------------------------------------------------------------------
// BatchNorm (+ReLU) with batch statistics, f32 throughout (src/nn/device/batchnorm.rs).
// Layout: x is (N, C, HW) contiguous; γ (C), β (C); stats = [mean (C); var (C)].

// The sums of one channel: each thread adds its elements in f64, then a tree in shared
// memory (fixed order). Returns the two totals to every thread of the block.
__device__ void block_sum2(double a, double b, double *sa, double *sb) {
    const unsigned t = threadIdx.x;
    sa[t] = a;
    sb[t] = b;
    __syncthreads();
    for (unsigned s = RED_THREADS / 2; s > 0; s >>= 1) {
        if (t < s) {
            sa[t] += sa[t + s];
            sb[t] += sb[t + s];
        }
        __syncthreads();
    }
}

// One block per channel: its mean and biased variance.
extern "C" __global__ void cl_bn_stats(const float *x, float *stats, u64 n, u64 c, u64 hw) {
    __shared__ double sa[RED_THREADS];
    __shared__ double sb[RED_THREADS];
    const u64 ch = blockIdx.x, m = n * hw;
    double s = 0.0, s2 = 0.0;
    for (u64 e = threadIdx.x; e < m; e += RED_THREADS) {
        const double v = x[((e / hw) * c + ch) * hw + e % hw];
        s += v;
        s2 += v * v;
    }
    block_sum2(s, s2, sa, sb);
    if (threadIdx.x == 0) {
        const double mean = sa[0] / (double)m;
        const double var = sb[0] / (double)m - mean * mean;
        stats[ch] = (float)mean;
        stats[c + ch] = (float)(var > 0.0 ? var : 0.0);
    }
}

// A running statistic in place: run = run·keep + stat·take (C elements; PyTorch's momentum
// rule, the variance's unbiasing folded into `take`).
extern "C" __global__ void cl_bn_running(float *run, const float *stat, u64 c, float keep,
                                         float take) {
    GRID_STRIDE(i, c) { run[i] = run[i] * keep + stat[i] * take; }
}

__device__ __forceinline__ void bn_affine(const float *gamma, const float *beta,
                                          const float *stats, u64 c, u64 ch, float eps,
                                          float *scale, float *shift, float *invstd) {
    *invstd = 1.0f / sqrtf(stats[c + ch] + eps);
    *scale = gamma[ch] * *invstd;
    *shift = beta[ch] - stats[ch] * *scale;
}

// y = γ (x − μ)/σ + β, then max(0, ·) when relu != 0.
extern "C" __global__ void cl_bn_fwd(const float *x, const float *gamma, const float *beta,
                                     const float *stats, float *y, u64 n, u64 c, u64 hw,
                                     float eps, int relu) {
    GRID_STRIDE(i, n * c * hw) {
        const u64 ch = (i / hw) % c;
        float scale, shift, invstd;
        bn_affine(gamma, beta, stats, c, ch, eps, &scale, &shift, &invstd);
        const float v = x[i] * scale + shift;
        y[i] = relu && !(v > 0.0f) ? 0.0f : v;
    }
}

// The residual join of a ResNet block in one pass: y = max(0, BN(x) + r) (src/nn/device/
// residual.rs), zero where the sum is not positive (PyTorch's ReLU).
extern "C" __global__ void cl_bn_add_relu_fwd(const float *x, const float *r, const float *gamma,
                                              const float *beta, const float *stats, float *y,
                                              u64 n, u64 c, u64 hw, float eps) {
    GRID_STRIDE(i, n * c * hw) {
        const u64 ch = (i / hw) % c;
        float scale, shift, invstd;
        bn_affine(gamma, beta, stats, c, ch, eps, &scale, &shift, &invstd);
        const float v = (x[i] * scale + shift) + r[i];
        y[i] = v > 0.0f ? v : 0.0f;
    }
}

// The gradient through a ReLU from its output: g where y > 0, else 0.
extern "C" __global__ void cl_mask_positive(const float *y, const float *g, float *out, u64 len) {
    GRID_STRIDE(i, len) { out[i] = y[i] > 0.0f ? g[i] : 0.0f; }
}

// Backward, pass 1 (one block per channel): Σg and Σg·x̂, g = dy masked by the ReLU, written
// as dγ and dβ into the tail of the packed output [dx (N·C·HW); dγ (C); dβ (C)].
extern "C" __global__ void cl_bn_bwd_sums(const float *x, const float *dy, const float *gamma,
                                          const float *beta, const float *stats, float *out,
                                          u64 n, u64 c, u64 hw, float eps, int relu) {
    __shared__ double sa[RED_THREADS];
    __shared__ double sb[RED_THREADS];
    const u64 ch = blockIdx.x, m = n * hw;
    float scale, shift, invstd;
    bn_affine(gamma, beta, stats, c, ch, eps, &scale, &shift, &invstd);
    const float mean = stats[ch];
    double sg = 0.0, sgx = 0.0;
    for (u64 e = threadIdx.x; e < m; e += RED_THREADS) {
        const u64 i = ((e / hw) * c + ch) * hw + e % hw;
        const float v = x[i];
        const float g = relu && !(v * scale + shift > 0.0f) ? 0.0f : dy[i];
        sg += g;
        sgx += g * ((v - mean) * invstd);
    }
    block_sum2(sg, sgx, sa, sb);
    if (threadIdx.x == 0) {
        const u64 len = n * c * hw;
        out[len + ch] = (float)sb[0];      // dγ = Σ g·x̂
        out[len + c + ch] = (float)sa[0];  // dβ = Σ g
    }
}

// Backward, pass 2: dx = γ/σ · (g − Σg/m − x̂ Σg·x̂/m), the sums read from the packed tail.
extern "C" __global__ void cl_bn_bwd_dx(const float *x, const float *dy, const float *gamma,
                                        const float *beta, const float *stats, float *out,
                                        u64 n, u64 c, u64 hw, float eps, int relu) {
    const u64 len = n * c * hw;
    const float m = (float)(n * hw);
    GRID_STRIDE(i, len) {
        const u64 ch = (i / hw) % c;
        float scale, shift, invstd;
        bn_affine(gamma, beta, stats, c, ch, eps, &scale, &shift, &invstd);
        const float v = x[i];
        const float g = relu && !(v * scale + shift > 0.0f) ? 0.0f : dy[i];
        const float xhat = (v - stats[ch]) * invstd;
        const float sgx = out[len + ch], sg = out[len + c + ch];
        out[i] = scale * (g - sg / m - xhat * sgx / m);
    }
}

// ---------------------------------------------------------------------------------------
// k×k max-pooling with stride and padding (src/nn/pool.rs): padding is −∞, the gradient goes
// whole to the first maximum of each window in row-major order, NaN wins (PyTorch's rules).

__device__ u64 pool_argmax(const float *plane, u64 h, u64 w, u64 k, u64 stride, u64 pad,
                           u64 oy, u64 ox) {
    u64 best = ~0ull;
    float best_v = 0.0f;
    for (u64 dy = 0; dy < k; ++dy) {
        const u64 ty = oy * stride + dy;
        if (ty < pad || ty >= h + pad) continue;
        for (u64 dx = 0; dx < k; ++dx) {
            const u64 tx = ox * stride + dx;
            if (tx < pad || tx >= w + pad) continue;
            const u64 j = (ty - pad) * w + (tx - pad);
            const float v = plane[j];
            if (best == ~0ull || v > best_v || v != v) {
                best = j;
                best_v = v;
            }
        }
    }
    return best;
}

extern "C" __global__ void cl_maxpool_fwd(const float *x, float *y, u64 planes, u64 h, u64 w,
                                       u64 k, u64 stride, u64 pad, u64 oh, u64 ow) {
    GRID_STRIDE(i, planes * oh * ow) {
        const u64 q = i / (oh * ow), pos = i % (oh * ow);
        const float *plane = x + q * h * w;
        y[i] = plane[pool_argmax(plane, h, w, k, stride, pad, pos / ow, pos % ow)];
    }
}

// Each input element gathers the gradients of the windows whose first maximum it is, in
// row-major window order (the order in which the CPU kernel scatters them).
extern "C" __global__ void cl_maxpool_bwd(const float *x, const float *dy, float *dx, u64 planes,
                                       u64 h, u64 w, u64 k, u64 stride, u64 pad, u64 oh,
                                       u64 ow) {
    GRID_STRIDE(i, planes * h * w) {
        const u64 q = i / (h * w), j = i % (h * w);
        const u64 yy = j / w + pad, xx = j % w + pad;  // padded coordinates
        const float *plane = x + q * h * w;
        // Windows oy with oy·stride ≤ yy < oy·stride + k.
        const u64 oy0 = yy + 1 > k ? (yy + 1 - k + stride - 1) / stride : 0;
        const u64 ox0 = xx + 1 > k ? (xx + 1 - k + stride - 1) / stride : 0;
        float acc = 0.0f;
        for (u64 oy = oy0; oy < oh && oy * stride <= yy; ++oy) {
            for (u64 ox = ox0; ox < ow && ox * stride <= xx; ++ox) {
                if (pool_argmax(plane, h, w, k, stride, pad, oy, ox) == j) {
                    acc += dy[q * oh * ow + oy * ow + ox];
                }
            }
        }
        dx[i] = acc;
    }
}

// ---------------------------------------------------------------------------------------
// Adam (src/train/optim.rs), in place, PyTorch's rule with the same f32 operations as the
// CPU's tensor ops: g' = g + wd·p; m = β1 m + (1−β1) g'; v = β2 v + (1−β2) g'²;
// p −= lr/bc1 · m / (√v / √bc2 + ε). Three launches per parameter (m, v, then p), no
// temporaries: each is one read-modify-write pass.

__device__ __forceinline__ float adam_grad(const float *g, const float *p, u64 i, float wd) {
    return wd > 0.0f ? g[i] + p[i] * wd : g[i];
}

extern "C" __global__ void cl_adam_m(float *m, const float *g, const float *p, u64 len, float b1,
                                  float one_minus_b1, float wd) {
    GRID_STRIDE(i, len) { m[i] = m[i] * b1 + adam_grad(g, p, i, wd) * one_minus_b1; }
}

extern "C" __global__ void cl_adam_v(float *v, const float *g, const float *p, u64 len, float b2,
                                  float one_minus_b2, float wd) {
    GRID_STRIDE(i, len) {
        const float gi = adam_grad(g, p, i, wd);
        v[i] = v[i] * b2 + (gi * gi) * one_minus_b2;
    }
}

extern "C" __global__ void cl_adam_p(float *p, const float *m, const float *v, u64 len,
                                  float inv_sqrt_bc2, float eps, float step_size) {
    GRID_STRIDE(i, len) {
        const float denom = sqrtf(v[i]) * inv_sqrt_bc2 + eps;
        p[i] = p[i] - (m[i] / denom) * step_size;
    }
}

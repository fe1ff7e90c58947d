// The CUDA built-ins that kernels.cu uses, for running its kernels on the CPU (emu.cpp).
//
// A launch runs its blocks one after the other on the calling thread. A kernel without
// __syncthreads runs its threads in a plain loop; a kernel with it runs each thread of a block
// as a fiber (ucontext) of the calling thread, switched at every __syncthreads: a round of the
// fibers is one phase between two barriers, so shared memory (`static thread_local`, one copy
// per calling thread) behaves as a block's. Built only with the `cuda-emu` feature.
#pragma once
#include <math.h>
#include <stdint.h>
#include <string.h>

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static thread_local

struct emu_dim3 {
    unsigned x, y, z;
};
static thread_local emu_dim3 threadIdx, blockIdx, blockDim, gridDim;

void emu_syncthreads();
#define __syncthreads() emu_syncthreads()

// bf16 as stored by candle's CPU backend (half::bf16): the top 16 bits of an f32.
struct bf16 {
    uint16_t bits;
};
static inline float to_f(float v) { return v; }
static inline float to_f(bf16 v) {
    uint32_t u = (uint32_t)v.bits << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline void store(float *p, float v) { *p = v; }
// Round to nearest even, NaN kept quiet: __float2bfloat16_rn's rule.
static inline void store(bf16 *p, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        p->bits = (uint16_t)((u >> 16) | 0x0040u);
        return;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    p->bits = (uint16_t)(u >> 16);
}

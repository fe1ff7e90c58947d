// Runs the kernels of kernels.cu on the CPU (see kernels_emu.h): `clusterlab_emu_launch` is
// what src/nn/device/launch.rs calls where a GPU would launch the kernel. Built by build.rs
// with the `cuda-emu` feature only.
#include "kernels.cu"

#include <ucontext.h>

#include <cstddef>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

// Fibers of one block (reused across blocks and launches on this thread).
struct Fiber {
    ucontext_t ctx;
    std::vector<char> stack;
    bool done = false;
};
thread_local ucontext_t sched;
thread_local std::vector<Fiber> fibers;
thread_local unsigned current = 0;
thread_local void (*body)(const uint64_t *) = nullptr;
thread_local const uint64_t *body_args = nullptr;

void fiber_main() {
    body(body_args);
    fibers[current].done = true;  // then uc_link returns to the scheduler
}

template <typename T>
T arg(uint64_t a) {
    if constexpr (std::is_pointer_v<T>) {
        return reinterpret_cast<T>(static_cast<uintptr_t>(a));
    } else if constexpr (std::is_same_v<T, float>) {
        uint32_t b = static_cast<uint32_t>(a);
        float f;
        memcpy(&f, &b, 4);
        return f;
    } else {
        return static_cast<T>(a);
    }
}

template <typename... A, size_t... I>
void call(void (*k)(A...), const uint64_t *a, std::index_sequence<I...>) {
    k(arg<A>(a[I])...);
}

struct Kernel {
    const char *name;
    size_t arity;
    bool syncs;  // uses __syncthreads
    void (*run)(const uint64_t *);
};

#define KERNEL(k, syncs)                                                                   \
    Kernel {                                                                               \
        #k, arity(k), syncs, [](const uint64_t *a) {                                       \
            call(k, a, std::make_index_sequence<arity(k)>{});                              \
        }                                                                                  \
    }

template <typename... A>
constexpr size_t arity(void (*)(A...)) {
    return sizeof...(A);
}

const Kernel KERNELS[] = {
    KERNEL(cl_im2col_f32, false), KERNEL(cl_im2col_bf16, false), KERNEL(cl_col2im_f32, false),
    KERNEL(cl_col2im_bf16, false), KERNEL(cl_bn_stats, true),    KERNEL(cl_bn_fwd, false),
    KERNEL(cl_bn_bwd_sums, true),  KERNEL(cl_bn_bwd_dx, false),  KERNEL(cl_maxpool_fwd, false),
    KERNEL(cl_maxpool_bwd, false), KERNEL(cl_adam_m, false),     KERNEL(cl_adam_v, false),
    KERNEL(cl_adam_p, false),
};

const size_t FIBER_STACK = 64 * 1024;

void run_block_fibers(const Kernel &k, const uint64_t *a, unsigned block) {
    if (fibers.size() < block) fibers.resize(block);
    body = k.run;
    body_args = a;
    for (unsigned t = 0; t < block; ++t) {
        Fiber &f = fibers[t];
        if (f.stack.empty()) f.stack.resize(FIBER_STACK);
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack.data();
        f.ctx.uc_stack.ss_size = f.stack.size();
        f.ctx.uc_link = &sched;
        makecontext(&f.ctx, fiber_main, 0);
        f.done = false;
    }
    for (bool running = true; running;) {
        running = false;
        for (unsigned t = 0; t < block; ++t) {
            if (fibers[t].done) continue;
            running = true;
            threadIdx = {t, 0, 0};
            current = t;
            swapcontext(&sched, &fibers[t].ctx);
        }
    }
}

}  // namespace

void emu_syncthreads() { swapcontext(&fibers[current].ctx, &sched); }

// Runs kernel `name` over `grid` blocks of `block` threads with the arguments `args` (pointers
// as addresses, f32 as their bits, integers as they are). Returns 0, or 1 for an unknown
// kernel, 2 for a wrong argument count.
extern "C" int clusterlab_emu_launch(const char *name, unsigned grid, unsigned block,
                                     const uint64_t *args, size_t nargs) {
    for (const Kernel &k : KERNELS) {
        if (strcmp(k.name, name) != 0) continue;
        if (k.arity != nargs) return 2;
        gridDim = {grid, 1, 1};
        blockDim = {block, 1, 1};
        for (unsigned b = 0; b < grid; ++b) {
            blockIdx = {b, 0, 0};
            if (k.syncs) {
                run_block_fibers(k, args, block);
            } else {
                for (unsigned t = 0; t < block; ++t) {
                    threadIdx = {t, 0, 0};
                    k.run(args);
                }
            }
        }
        return 0;
    }
    return 1;
}

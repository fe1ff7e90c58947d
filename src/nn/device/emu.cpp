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

// Fibers of one block (reused across blocks and launches on this thread). On x86-64 a fiber
// switch is a few instructions (`emu_switch` below: callee-saved registers and the stack
// pointer); glibc's swapcontext, used elsewhere, also makes a signal-mask system call per
// switch: an emulated ResNet-18 step (batch 32, `bench train`) took 17.4 s with it, 2.1 s
// with this (native kernels: 0.35 s).
struct Fiber {
    std::vector<char> stack;
    bool done = false;
#if defined(__x86_64__)
    void *sp = nullptr;
#else
    ucontext_t ctx;
#endif
};
thread_local std::vector<Fiber> fibers;
thread_local unsigned current = 0;
thread_local void (*body)(const uint64_t *) = nullptr;
thread_local const uint64_t *body_args = nullptr;

#if defined(__x86_64__)
extern "C" void emu_switch(void **save_sp, void *next_sp);
asm(R"(
    .text
    .globl emu_switch
    .type emu_switch, @function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch, .-emu_switch
)");
thread_local void *sched_sp = nullptr;

void to_scheduler() { emu_switch(&fibers[current].sp, sched_sp); }

[[noreturn]] void fiber_main() {
    body(body_args);
    fibers[current].done = true;
    to_scheduler();
    __builtin_unreachable();
}

void start_fiber(Fiber &f) {
    // The stack top, 16-byte aligned: a zero return address for fiber_main (which never
    // returns), fiber_main's address for emu_switch's `ret`, six zeroed saved registers.
    uintptr_t top = (reinterpret_cast<uintptr_t>(f.stack.data()) + f.stack.size()) & ~uintptr_t(15);
    void **sp = reinterpret_cast<void **>(top);
    *--sp = nullptr;
    *--sp = reinterpret_cast<void *>(&fiber_main);
    for (int i = 0; i < 6; ++i) *--sp = nullptr;
    f.sp = sp;
}

void resume(unsigned t) { emu_switch(&sched_sp, fibers[t].sp); }
#else
thread_local ucontext_t sched;

void to_scheduler() { swapcontext(&fibers[current].ctx, &sched); }

void fiber_main() {
    body(body_args);
    fibers[current].done = true;  // then uc_link returns to the scheduler
}

void start_fiber(Fiber &f) {
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack.data();
    f.ctx.uc_stack.ss_size = f.stack.size();
    f.ctx.uc_link = &sched;
    makecontext(&f.ctx, fiber_main, 0);
}

void resume(unsigned t) { swapcontext(&sched, &fibers[t].ctx); }
#endif

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
    KERNEL(cl_im2col_f32, false),       KERNEL(cl_im2col_bf16, false),
    KERNEL(cl_col2im_f32, false),       KERNEL(cl_col2im_bf16, false),
    KERNEL(cl_nchw_to_rows_f32, false), KERNEL(cl_nchw_to_rows_bf16, false),
    KERNEL(cl_bn_stats, true),          KERNEL(cl_bn_running, false),
    KERNEL(cl_bn_fwd, false),           KERNEL(cl_bn_add_relu_fwd, false),
    KERNEL(cl_mask_positive, false),    KERNEL(cl_bn_bwd_sums, true),
    KERNEL(cl_bn_bwd_dx, false),        KERNEL(cl_maxpool_fwd, false),
    KERNEL(cl_maxpool_bwd, false),      KERNEL(cl_adam_m, false),
    KERNEL(cl_adam_v, false),           KERNEL(cl_adam_p, false),
};

const size_t FIBER_STACK = 64 * 1024;

void run_block_fibers(const Kernel &k, const uint64_t *a, unsigned block) {
    if (fibers.size() < block) fibers.resize(block);
    body = k.run;
    body_args = a;
    for (unsigned t = 0; t < block; ++t) {
        Fiber &f = fibers[t];
        if (f.stack.empty()) f.stack.resize(FIBER_STACK);
        start_fiber(f);
        f.done = false;
    }
    for (bool running = true; running;) {
        running = false;
        for (unsigned t = 0; t < block; ++t) {
            if (fibers[t].done) continue;
            running = true;
            threadIdx = {t, 0, 0};
            current = t;
            resume(t);
        }
    }
}

}  // namespace

void emu_syncthreads() { to_scheduler(); }

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

//! Kernel launches described once and run by the GPU (feature `cuda`) or by the CPU build of
//! the same kernels (feature `cuda-emu`).
//!
//! An op's buffers are numbered: for a custom op, its inputs then its output; for an in-place
//! op, the destination then the sources. Buffers must be contiguous (their layout's start
//! offset is honoured). Pointers travel to the kernels as 64-bit addresses.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, DType, Layout, Result, Storage, Tensor};
use std::sync::atomic::{AtomicU64, Ordering};

/// Kernel launches and matrix products this module has run (the `ops_per_step` of `bench
/// train`), and the outputs our custom ops handed to candle as tensors.
static LAUNCHES: AtomicU64 = AtomicU64::new(0);
static OUTPUTS: AtomicU64 = AtomicU64::new(0);

/// (launches, op outputs) so far in this process: every kernel of kernels.cu and every matrix
/// product our ops run counts one launch; every custom op's result one output.
pub fn counts() -> (u64, u64) {
    (
        LAUNCHES.load(Ordering::Relaxed),
        OUTPUTS.load(Ordering::Relaxed),
    )
}

/// Counts one custom op result handed to candle (a tensor candle also counts).
pub fn count_output() {
    OUTPUTS.fetch_add(1, Ordering::Relaxed);
}

/// A device buffer type our ops run on: the CPU's (the emulated kernels) or a GPU's. The ops
/// are written once over it, so that the emulated run exercises the GPU's sequence of
/// launches, buffers and products.
pub trait DeviceStorage: BackendStorage + Sized {
    /// A buffer of `len` elements of `dtype` on the device of `self` (contents unspecified
    /// on a GPU: the kernels that fill it write every element).
    fn alloc_like(&self, dtype: DType, len: usize) -> Result<Self>;

    /// Runs `launches` over `inputs` (read) and `out` (written; the last buffer, or with
    /// `out_first` the first).
    fn run(
        launches: &[Launch],
        inputs: &[(&Self, &Layout)],
        out: (&mut Self, &Layout),
        out_first: bool,
    ) -> Result<()>;

    /// This device's buffer of a tensor's storage.
    fn of(s: &Storage) -> Result<&Self>;

    /// Runs `launches` over `inputs` and a new output of `len` elements of `dtype` (the last
    /// buffer).
    fn op(
        launches: &[Launch],
        inputs: &[(&Self, &Layout)],
        dtype: DType,
        len: usize,
    ) -> Result<Self> {
        let mut out = inputs[0].0.alloc_like(dtype, len)?;
        Self::run(
            launches,
            inputs,
            (&mut out, &Layout::contiguous(len)),
            false,
        )?;
        Ok(out)
    }
}

impl DeviceStorage for CpuStorage {
    fn alloc_like(&self, dtype: DType, len: usize) -> Result<Self> {
        cpu_zeros(dtype, len)
    }

    fn run(
        launches: &[Launch],
        inputs: &[(&Self, &Layout)],
        out: (&mut Self, &Layout),
        out_first: bool,
    ) -> Result<()> {
        run_cpu(launches, inputs, out, out_first)
    }

    fn of(s: &Storage) -> Result<&Self> {
        match s {
            Storage::Cpu(s) => Ok(s),
            _ => bail!("a device op's operands must all be on one device"),
        }
    }
}

#[cfg(feature = "cuda")]
impl DeviceStorage for candle_core::CudaStorage {
    fn alloc_like(&self, dtype: DType, len: usize) -> Result<Self> {
        gpu::cuda_alloc(&self.device, dtype, len)
    }

    fn run(
        launches: &[Launch],
        inputs: &[(&Self, &Layout)],
        out: (&mut Self, &Layout),
        out_first: bool,
    ) -> Result<()> {
        run_cuda(launches, inputs, out, out_first)
    }

    fn of(s: &Storage) -> Result<&Self> {
        match s {
            Storage::Cuda(s) => Ok(s),
            _ => bail!("a device op's operands must all be on one device"),
        }
    }
}

/// `f` with the buffer and layout of a tensor an op holds besides its inputs (statistics,
/// γ and β of a backward op).
pub fn with_buffer<S: DeviceStorage, R>(
    t: &Tensor,
    f: impl FnOnce(&S, &Layout) -> Result<R>,
) -> Result<R> {
    let (s, l) = t.storage_and_layout();
    f(S::of(&s)?, l)
}

/// The product lhs · rhs as batches of (m × k)·(k × n) given by the layouts (any strides
/// candle's matmul takes: a batch stride of 0 shares one matrix, swapped strides transpose):
/// candle's product on the device (the gemm crate on the CPU, cuBLAS on a GPU), a new
/// contiguous (b, m, n) buffer. Counted as one launch.
pub fn gemm<S: DeviceStorage>(
    lhs: (&S, &Layout),
    rhs: (&S, &Layout),
    bmnk: (usize, usize, usize, usize),
) -> Result<S> {
    LAUNCHES.fetch_add(1, Ordering::Relaxed);
    lhs.0.matmul(rhs.0, bmnk, lhs.1, rhs.1)
}

/// Threads per block: every launch of this module, and `RED_THREADS` in kernels.cu.
pub const THREADS: u32 = 256;
/// Blocks of a grid-stride launch at most (the kernels loop over the rest): far below the
/// 2³¹ − 1 a grid allows, and enough to fill any current GPU.
pub const MAX_BLOCKS: usize = 1 << 16;

/// One argument of a kernel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arg {
    /// Buffer `i`, from its first element.
    Buf(usize),
    /// Buffer `i` from element `offset` on.
    BufAt(usize, usize),
    U64(usize),
    F32(f32),
    I32(i32),
}

/// One launch: `kernel` (an `extern "C"` name of kernels.cu) over `grid` blocks of
/// [`THREADS`] threads.
#[derive(Debug, Clone)]
pub struct Launch {
    pub kernel: String,
    pub grid: u32,
    pub args: Vec<Arg>,
}

impl Launch {
    /// A grid-stride launch over `total` elements.
    pub fn elementwise(kernel: impl Into<String>, total: usize, args: Vec<Arg>) -> Self {
        let grid = total.div_ceil(THREADS as usize).clamp(1, MAX_BLOCKS) as u32;
        Self {
            kernel: kernel.into(),
            grid,
            args,
        }
    }

    /// One block per item (`blocks` of them: channels of a reduction).
    pub fn per_block(kernel: impl Into<String>, blocks: usize, args: Vec<Arg>) -> Result<Self> {
        if blocks == 0 || blocks > i32::MAX as usize {
            bail!("a launch of {blocks} blocks")
        }
        Ok(Self {
            kernel: kernel.into(),
            grid: blocks as u32,
            args,
        })
    }
}

/// The kernel-name suffix of a dtype (`_f32`, `_bf16`).
pub fn suffix(dtype: DType) -> Result<&'static str> {
    match dtype {
        DType::F32 => Ok("f32"),
        DType::BF16 => Ok("bf16"),
        d => bail!("our device kernels take f32 or bf16, not {d:?}"),
    }
}

/// The arguments as 64-bit words given buffer addresses and element sizes.
fn words(args: &[Arg], addr: &[(u64, usize)]) -> Result<Vec<u64>> {
    args.iter()
        .map(|a| {
            Ok(match *a {
                Arg::Buf(i) | Arg::BufAt(i, _) if i >= addr.len() => {
                    bail!("kernel argument names buffer {i} of {}", addr.len())
                }
                Arg::Buf(i) => addr[i].0,
                Arg::BufAt(i, off) => addr[i].0 + (off * addr[i].1) as u64,
                Arg::U64(v) => v as u64,
                Arg::F32(v) => v.to_bits() as u64,
                Arg::I32(v) => v as u32 as u64,
            })
        })
        .collect()
}

/// A fresh zeroed CPU buffer of `len` elements of `dtype`.
pub fn cpu_zeros(dtype: DType, len: usize) -> Result<CpuStorage> {
    Ok(match dtype {
        DType::F32 => CpuStorage::F32(vec![0.0; len]),
        DType::BF16 => CpuStorage::BF16(vec![half::bf16::ZERO; len]),
        d => bail!("our device kernels take f32 or bf16, not {d:?}"),
    })
}

/// (address of the first element, element size) of a CPU buffer.
fn cpu_addr(s: &CpuStorage, l: &Layout) -> Result<(u64, usize)> {
    let Some((start, _)) = l.contiguous_offsets() else {
        bail!("our device kernels need contiguous inputs")
    };
    Ok(match s {
        CpuStorage::F32(v) => (v[start..].as_ptr() as u64, 4),
        CpuStorage::BF16(v) => (v[start..].as_ptr() as u64, 2),
        s => bail!("our device kernels take f32 or bf16, not {:?}", s.dtype()),
    })
}

/// [`cpu_addr`] of the buffer the kernels write.
fn cpu_addr_mut(s: &mut CpuStorage, l: &Layout) -> Result<(u64, usize)> {
    let Some((start, _)) = l.contiguous_offsets() else {
        bail!("our device kernels need a contiguous output")
    };
    Ok(match s {
        CpuStorage::F32(v) => (v[start..].as_mut_ptr() as u64, 4),
        CpuStorage::BF16(v) => (v[start..].as_mut_ptr() as u64, 2),
        s => bail!("our device kernels take f32 or bf16, not {:?}", s.dtype()),
    })
}

/// Runs `launches` on the CPU build of the kernels, over `inputs` (read) and `out` (written;
/// the last buffer, or with `out_first` the first: an in-place op's destination).
pub fn run_cpu(
    launches: &[Launch],
    inputs: &[(&CpuStorage, &Layout)],
    out: (&mut CpuStorage, &Layout),
    out_first: bool,
) -> Result<()> {
    let mut addr = inputs
        .iter()
        .map(|(s, l)| cpu_addr(s, l))
        .collect::<Result<Vec<_>>>()?;
    let o = cpu_addr_mut(out.0, out.1)?;
    if out_first {
        addr.insert(0, o);
    } else {
        addr.push(o);
    }
    for l in launches {
        let w = words(&l.args, &addr)?;
        LAUNCHES.fetch_add(1, Ordering::Relaxed);
        emu::launch(&l.kernel, l.grid, &w)?;
    }
    Ok(())
}

/// Runs `launches` over `inputs` and a new output of `len` elements of `dtype` (the last
/// buffer), on the CPU build of the kernels: the result of a custom op (counted).
pub fn cpu_op(
    launches: &[Launch],
    inputs: &[(&CpuStorage, &Layout)],
    dtype: DType,
    len: usize,
) -> Result<CpuStorage> {
    count_output();
    CpuStorage::op(launches, inputs, dtype, len)
}

#[cfg(feature = "cuda-emu")]
mod emu {
    use std::ffi::{c_char, c_int, CString};

    extern "C" {
        fn clusterlab_emu_launch(
            name: *const c_char,
            grid: u32,
            block: u32,
            args: *const u64,
            nargs: usize,
        ) -> c_int;
    }

    pub fn launch(kernel: &str, grid: u32, args: &[u64]) -> candle_core::Result<()> {
        let name = CString::new(kernel).map_err(candle_core::Error::wrap)?;
        // SAFETY: the words are the kernel's arguments in order (checked by count on the C++
        // side); the buffers they address stay borrowed by the caller until this returns.
        let rc = unsafe {
            clusterlab_emu_launch(
                name.as_ptr(),
                grid,
                super::THREADS,
                args.as_ptr(),
                args.len(),
            )
        };
        match rc {
            0 => Ok(()),
            1 => candle_core::bail!("no kernel {kernel} in kernels.cu"),
            _ => candle_core::bail!("kernel {kernel} takes another number of arguments"),
        }
    }
}

#[cfg(not(feature = "cuda-emu"))]
mod emu {
    pub fn launch(kernel: &str, _: u32, _: &[u64]) -> candle_core::Result<()> {
        candle_core::bail!(
            "kernel {kernel}: our device kernels run on the CPU only in a build with the \
             cuda-emu feature (CLUSTERLAB_KERNELS=emulated)"
        )
    }
}

#[cfg(feature = "cuda")]
pub use gpu::{cuda_alloc, cuda_op, run_cuda};

#[cfg(feature = "cuda")]
mod gpu {
    use super::{words, Launch, THREADS};
    use candle_core::cuda_backend::cudarc::driver::{
        DevicePtr, DevicePtrMut, LaunchConfig, PushKernelArg,
    };
    use candle_core::cuda_backend::{CudaStorageSlice, WrapErr};
    use candle_core::{bail, CudaDevice, CudaStorage, DType, Layout, Result};

    /// The PTX of kernels.cu (build.rs), loaded once per device as module `clusterlab`.
    const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/clusterlab_kernels.ptx"));

    /// A device buffer of `len` elements of `dtype`, not initialised: every kernel of
    /// kernels.cu writes each element of its output.
    pub fn cuda_alloc(dev: &CudaDevice, dtype: DType, len: usize) -> Result<CudaStorage> {
        // SAFETY: the op's launches write every element before anything reads it.
        let slice = match dtype {
            DType::F32 => CudaStorageSlice::F32(unsafe { dev.alloc::<f32>(len)? }),
            DType::BF16 => CudaStorageSlice::BF16(unsafe { dev.alloc::<half::bf16>(len)? }),
            d => bail!("our device kernels take f32 or bf16, not {d:?}"),
        };
        Ok(CudaStorage {
            slice,
            device: dev.clone(),
        })
    }

    /// [`super::cpu_op`] on the GPU.
    pub fn cuda_op(
        launches: &[Launch],
        inputs: &[(&CudaStorage, &Layout)],
        dtype: DType,
        len: usize,
    ) -> Result<CudaStorage> {
        super::count_output();
        <CudaStorage as super::DeviceStorage>::op(launches, inputs, dtype, len)
    }

    /// [`super::run_cpu`] on the GPU: the same buffers, the kernels from the PTX.
    pub fn run_cuda(
        launches: &[Launch],
        inputs: &[(&CudaStorage, &Layout)],
        out: (&mut CudaStorage, &Layout),
        out_first: bool,
    ) -> Result<()> {
        let dev = out.0.device.clone();
        let stream = dev.cuda_stream();
        // The read and write guards record the stream's use of each buffer when dropped
        // (after the launches), as cudarc's own argument pushing does.
        let mut guards = Vec::new();
        let mut addr = Vec::with_capacity(inputs.len() + 1);
        for (s, l) in inputs {
            let Some((start, _)) = l.contiguous_offsets() else {
                bail!("our device kernels need contiguous inputs")
            };
            let (p, size) = match &s.slice {
                CudaStorageSlice::F32(v) => {
                    let (p, g) = v.device_ptr(&stream);
                    guards.push(g);
                    (p, 4)
                }
                CudaStorageSlice::BF16(v) => {
                    let (p, g) = v.device_ptr(&stream);
                    guards.push(g);
                    (p, 2)
                }
                _ => bail!("our device kernels take f32 or bf16"),
            };
            addr.push((p + (start * size) as u64, size));
        }
        let Some((start, _)) = out.1.contiguous_offsets() else {
            bail!("our device kernels need a contiguous output")
        };
        let (p, size) = match &mut out.0.slice {
            CudaStorageSlice::F32(v) => {
                let (p, g) = v.device_ptr_mut(&stream);
                guards.push(g);
                (p, 4)
            }
            CudaStorageSlice::BF16(v) => {
                let (p, g) = v.device_ptr_mut(&stream);
                guards.push(g);
                (p, 2)
            }
            _ => bail!("our device kernels take f32 or bf16"),
        };
        let o = (p + (start * size) as u64, size);
        if out_first {
            addr.insert(0, o);
        } else {
            addr.push(o);
        }
        for l in launches {
            let w = words(&l.args, &addr)?;
            let func = dev.get_or_load_custom_func(&l.kernel, "clusterlab", PTX)?;
            let mut b = func.builder();
            for v in &w {
                // The driver copies each parameter's own size from the word's address: all
                // 8 bytes for pointers and u64, the low 4 (little-endian) for f32 and int.
                b.arg(v);
            }
            let cfg = LaunchConfig {
                grid_dim: (l.grid, 1, 1),
                block_dim: (THREADS, 1, 1),
                shared_mem_bytes: 0,
            };
            super::LAUNCHES.fetch_add(1, super::Ordering::Relaxed);
            // SAFETY: the arguments match the kernel's signature (kernels.cu), the buffers
            // are alive and borrowed (guards) until the launches are queued.
            unsafe { b.launch(cfg) }.w()?;
        }
        drop(guards);
        Ok(())
    }
}

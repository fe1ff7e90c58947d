//! Gradient mode: PyTorch's `torch.no_grad()` for candle.
//!
//! candle records an op in the autograd graph whenever one of its inputs is a `Var` or was made
//! from one, and every recorded op keeps its inputs alive until the result is dropped. A
//! forward that does not train (evaluation, `predict`, the features k-means and an `init` hook
//! read, a frozen backbone) would otherwise hold every activation of the network until its
//! output is gone: about 190 MB per 224-px image on the GPU's op graph (issue 27). Layers read
//! their parameters through [`read`]: the variable itself while training, a detached view of
//! the same storage (no copy) under [`no_grad`], so that nothing downstream is recorded and each
//! activation is freed as soon as the next layer has consumed it. The values are the same bits
//! either way.

use candle_core::{Tensor, Var};
use std::cell::Cell;

thread_local! {
    static NO_GRAD: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` without recording an autograd graph on this thread (nested calls are fine; the
/// mode before is restored when `f` returns or unwinds).
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            NO_GRAD.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(NO_GRAD.with(|c| c.replace(true)));
    f()
}

/// Whether this thread is inside [`no_grad`].
pub fn grad_disabled() -> bool {
    NO_GRAD.with(|c| c.get())
}

/// A parameter or buffer as a layer reads it: the tracked variable while training, a detached
/// view (same storage, no graph) under [`no_grad`].
pub fn read(v: &Var) -> Tensor {
    if grad_disabled() {
        v.as_tensor().detach()
    } else {
        v.as_tensor().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Under `no_grad` a product of a variable is not recorded (no gradient reaches the
    /// variable), outside it is; the values are the same bits.
    #[test]
    fn no_grad_records_nothing_and_keeps_values() {
        let w =
            Var::from_tensor(&Tensor::new(&[1.5f32, -2.0, 0.25], &Device::Cpu).unwrap()).unwrap();
        let x = Tensor::new(&[2.0f32, 3.0, 4.0], &Device::Cpu).unwrap();
        let tracked = (read(&w) * &x).unwrap().sum_all().unwrap();
        let grads = tracked.backward().unwrap();
        assert!(grads.get(w.as_tensor()).is_some());
        let untracked = no_grad(|| (read(&w) * &x).unwrap().sum_all().unwrap());
        assert!(!untracked.track_op(), "an op recorded under no_grad");
        assert!(untracked.backward().unwrap().get(w.as_tensor()).is_none());
        assert_eq!(
            tracked.to_scalar::<f32>().unwrap().to_bits(),
            untracked.to_scalar::<f32>().unwrap().to_bits()
        );
        assert!(!grad_disabled(), "the mode leaked out of no_grad");
        let r = std::panic::catch_unwind(|| no_grad(|| panic!("boom")));
        assert!(r.is_err());
        assert!(
            !grad_disabled(),
            "the mode leaked out of a panicking no_grad"
        );
    }
}

//! Layers over [`Params`]: conv, BatchNorm (train/eval), linear.

use candle_core::{Tensor, Var, D};

use super::Params;
use crate::error::Result;

/// A bias-free 3×3 (or k×k) convolution, initialised by `Params::conv_init`.
pub struct Conv2d {
    weight: Var,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    pub fn new(
        p: &mut Params,
        name: &str,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        let weight = p.conv_weight(&format!("{name}.weight"), &[cout, cin, k, k])?;
        Ok(Self {
            weight,
            stride,
            padding,
        })
    }

    /// The convolution under the thread's precision ([`super::autocast`]); off our CPU
    /// kernels, in batch slices that keep every launch (im2col columns included) within
    /// [`super::launch_limit`].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        super::autocast(x, &super::read(&self.weight), |x, w| self.conv(x, w))
    }

    fn conv(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        if !super::native(x) {
            let (_, c, h, wd) = x.dims4()?;
            let (cout, _, k, _) = w.dims4()?;
            let ho = (h + 2 * self.padding - k) / self.stride + 1;
            let wo = (wd + 2 * self.padding - k) / self.stride + 1;
            let per_sample = (c * h * wd).max(cout * ho * wo).max(ho * wo * c * k * k);
            let device = super::device::applies(x, true);
            return super::split_batch(x, per_sample, |x| {
                if device {
                    return Ok(super::device::conv::conv2d(
                        x,
                        w,
                        self.stride,
                        self.padding,
                    )?);
                }
                Ok(x.conv2d(w, self.padding, self.stride, 1, 1)?)
            });
        }
        let (n, c, h, wd) = x.dims4()?;
        let (cout, _, k, _) = w.dims4()?;
        let x = x.contiguous()?;
        if super::winograd::Winograd::applies(c, cout, k, self.stride, self.padding) {
            let op = super::winograd::Winograd {
                n,
                c,
                h,
                w: wd,
                cout,
            };
            return Ok(x.apply_op2(w, op)?);
        }
        let op = super::conv::Conv {
            n,
            c,
            h,
            w: wd,
            cout,
            k,
            stride: self.stride,
            pad: self.padding,
        };
        Ok(x.apply_op2(w, op)?)
    }
}

/// BatchNorm2d with PyTorch semantics: batch statistics (biased variance) in train mode, running
/// statistics (momentum 0.1, unbiased variance) in eval mode.
pub struct BatchNorm2d {
    weight: Var,
    bias: Var,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    momentum: f64,
}

impl BatchNorm2d {
    pub fn new(p: &mut Params, name: &str, c: usize) -> Result<Self> {
        Ok(Self {
            weight: p.constant(&format!("{name}.weight"), &[c], 1.0)?,
            bias: p.constant(&format!("{name}.bias"), &[c], 0.0)?,
            running_mean: p.buffer(&format!("{name}.running_mean"), &[c], 0.0)?,
            running_var: p.buffer(&format!("{name}.running_var"), &[c], 1.0)?,
            eps: 1e-5,
            momentum: 0.1,
        })
    }

    /// BatchNorm followed by ReLU: one fused kernel on CPU in train mode.
    pub fn forward_relu(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.apply(x, train, true)
    }

    /// BatchNorm, then ReLU when `relu`: the fused kernel on CPU in train mode, the composed
    /// ops of [`BatchNorm2d::forward`] otherwise (eval mode, other devices).
    pub fn apply(&self, x: &Tensor, train: bool, relu: bool) -> Result<Tensor> {
        if train && super::device::applies(x, false) {
            let (y, stats) = super::device::batchnorm::train(
                x,
                &super::read(&self.weight),
                &super::read(&self.bias),
                self.eps,
                relu,
            )?;
            self.update_running_device(x, &stats)?;
            return Ok(y);
        }
        if !(train && super::native(x)) {
            let y = self.forward(x, train)?;
            return Ok(if relu { y.relu()? } else { y });
        }
        let (x, op) = self.native_op(x, relu)?;
        Ok(x.apply_op3(&super::read(&self.weight), &super::read(&self.bias), op)?)
    }

    /// The residual join of a ResNet block, max(0, BN(x) + r): in train mode one op on our
    /// kernels (CPU or device; the BatchNorm's output and the sum are never stored), else the
    /// BatchNorm then [`super::residual::add_relu`].
    pub fn add_relu(&self, x: &Tensor, r: &Tensor, train: bool) -> Result<Tensor> {
        if train && x.shape() == r.shape() {
            if super::device::applies(x, false) && super::device::applies(r, false) {
                let (y, stats) = super::device::residual::bn_add_relu(
                    x,
                    r,
                    &super::read(&self.weight),
                    &super::read(&self.bias),
                    self.eps,
                )?;
                self.update_running_device(x, &stats)?;
                return Ok(y);
            }
            if super::native(x) && super::native(r) {
                let (x, op) = self.native_op(x, false)?;
                let (w, b) = (super::read(&self.weight), super::read(&self.bias));
                return super::residual::bn_add_relu(&x, r, &w, &b, op);
            }
        }
        super::residual::add_relu(&self.apply(x, train, false)?, r)
    }

    /// The batch statistics of a CPU f32 x (the running averages updated from them) and the
    /// fused CPU kernel's op for them.
    fn native_op(&self, x: &Tensor, relu: bool) -> Result<(Tensor, super::fused::BnRelu)> {
        let x = x.contiguous()?;
        let (n, c, h, w) = x.dims4()?;
        let (mean, var) = {
            let (storage, layout) = x.storage_and_layout();
            let candle_core::Storage::Cpu(cpu) = &*storage else {
                unreachable!("checked is_cpu")
            };
            let (a, b) = layout.contiguous_offsets().expect("contiguous");
            super::fused::channel_stats(&cpu.as_slice::<f32>()?[a..b], n, c, h * w)
        };
        let dev = x.device();
        self.update_running(
            &Tensor::from_slice(&mean, c, dev)?,
            &Tensor::from_slice(&var, c, dev)?,
            (n * h * w) as f64,
        )?;
        let op = super::fused::BnRelu {
            relu,
            n,
            c,
            hw: h * w,
            invstd: var
                .iter()
                .map(|v| 1.0 / (v + self.eps as f32).sqrt())
                .collect(),
            mean,
            gamma: super::read(&self.weight).to_vec1()?,
            beta: super::read(&self.bias).to_vec1()?,
        };
        Ok((x, op))
    }

    /// The running averages from the device's batch statistics [mean; var], in place.
    fn update_running_device(&self, x: &Tensor, stats: &Tensor) -> Result<()> {
        let count = (x.elem_count() / self.weight.dim(0)?) as f64;
        Ok(super::device::batchnorm::update_running(
            self.running_mean.as_tensor(),
            self.running_var.as_tensor(),
            stats,
            self.momentum,
            count,
        )?)
    }

    /// running ← (1 − momentum)·running + momentum·batch, the variance made unbiased over
    /// `count` values per channel (PyTorch's rule); `mean` and `var` are (C).
    fn update_running(&self, mean: &Tensor, var: &Tensor, count: f64) -> Result<()> {
        let m = self.momentum;
        self.running_mean
            .set(&((&super::read(&self.running_mean) * (1.0 - m))? + (mean * m)?)?)?;
        self.running_var.set(
            &((&super::read(&self.running_var) * (1.0 - m))?
                + (var * (m * count / (count - 1.0).max(1.0)))?)?,
        )?;
        Ok(())
    }

    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let c = self.weight.dim(0)?;
        let shape = (1, c, 1, 1);
        let (mean, var) = if train {
            let mean = x.mean_keepdim((0, 2, 3))?;
            let centred = x.broadcast_sub(&mean)?;
            let var = centred.sqr()?.mean_keepdim((0, 2, 3))?;
            let n = (x.elem_count() / c) as f64;
            let m = self.momentum;
            let rm = ((&super::read(&self.running_mean) * (1.0 - m))?
                + (mean.detach().flatten_all()? * m)?)?;
            let rv = ((&super::read(&self.running_var) * (1.0 - m))?
                + (var.detach().flatten_all()? * (m * n / (n - 1.0).max(1.0)))?)?;
            self.running_mean.set(&rm)?;
            self.running_var.set(&rv)?;
            (mean, var)
        } else {
            (
                super::read(&self.running_mean).reshape(shape)?,
                super::read(&self.running_var).reshape(shape)?,
            )
        };
        let inv = (var + self.eps)?.sqrt()?.recip()?;
        let scale = super::read(&self.weight)
            .reshape(shape)?
            .broadcast_mul(&inv)?;
        let shift = (super::read(&self.bias).reshape(shape)? - mean.broadcast_mul(&scale)?)?;
        Ok(x.broadcast_mul(&scale)?.broadcast_add(&shift)?)
    }
}

/// A linear layer with PyTorch's default init.
pub struct Linear {
    weight: Var,
    bias: Var,
}

impl Linear {
    pub fn new(p: &mut Params, name: &str, fan_in: usize, fan_out: usize) -> Result<Self> {
        Ok(Self {
            weight: p.uniform_fan_in(&format!("{name}.weight"), &[fan_out, fan_in], fan_in)?,
            bias: p.uniform_fan_in(&format!("{name}.bias"), &[fan_out], fan_in)?,
        })
    }

    /// x·Wᵀ + b under the thread's precision ([`super::autocast`]; the bias is added in f32).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = super::autocast(x, &super::read(&self.weight), |x, w| Ok(x.matmul(&w.t()?)?))?;
        Ok(y.broadcast_add(&super::read(&self.bias))?)
    }
}

/// Row-wise L2 normalisation (torch.nn.functional.normalize, eps 1e-12).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.maximum(1e-12)?;
    Ok(x.broadcast_div(&norm)?)
}

/// 2×2 max-pooling, stride 2: the fused kernel on CPU, the portable max-pool elsewhere
/// (candle 0.11's own `max_pool2d` backward scales the gradient by 1/4).
pub fn max_pool2(x: &Tensor) -> Result<Tensor> {
    if super::device::applies(x, false) {
        return Ok(super::device::pool::max_pool(x, 2, 2, 0)?);
    }
    if !super::native(x) {
        return super::pool::max_pool_portable(x, 2, 2, 0);
    }
    let (n, c, h, w) = x.dims4()?;
    Ok(x.contiguous()?
        .apply_op1(super::fused::MaxPool2 { n, c, h, w })?)
}

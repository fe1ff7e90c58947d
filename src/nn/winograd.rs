//! 3×3, stride-1, padding-1 convolution by Winograd's minimal filtering F(2×2, 3×3) (Lavin &
//! Gray, "Fast Algorithms for Convolutional Neural Networks", 2016), as a candle custom op on CPU.
//!
//! Each 2×2 block of outputs is `Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A` of its 4×4 input tile d and the 3×3
//! kernel g: 16 multiplies instead of 36, so the gemms that do the channel sums (one per
//! position ξ of the 4×4 transformed tile) do 2.25× fewer multiply-adds than im2col's. The
//! backward passes come from the same trilinear form
//! `Σ_ξ (A e Aᵀ)_ξ (G g Gᵀ)_ξ (Bᵀ d B)_ξ` (e: a 2×2 block of output gradient):
//! - weight gradient `Gᵀ[(A e Aᵀ) ⊙ (Bᵀ d B)]G`, summed over blocks before the outer transform;
//! - input gradient `B[(A e Aᵀ) ⊙ (G g Gᵀ)]Bᵀ`, 4×4 patches added back where the tiles overlap.
//!
//! Both 2.25× cheaper than their im2col gemms. Work is split as in [`super::conv`]: fixed
//! chunks of images sized from the shapes alone, weight-gradient partials summed in chunk order,
//! so every bit of the result is the same for any thread count.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::mem::MaybeUninit;

use super::conv::{as_uninit, mm, with_scratch};
use super::with_simd;

/// Weights per parallel block of the kernel transforms.
const BLOCK: usize = 4096;

/// Geometry of one 3×3, stride-1, padding-1 convolution (output size = input size).
#[derive(Debug, Clone, Copy)]
pub struct Winograd {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
}

/// `d[k] = f(a[k], b[k])` over the shortest of the three.
#[inline(always)]
fn map2(d: &mut [f32], a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) {
    for ((d, &a), &b) in d.iter_mut().zip(a).zip(b) {
        *d = f(a, b);
    }
}

/// `d[k] = f(a[k], b[k], c[k])` over the shortest of the four.
#[inline(always)]
fn map3(d: &mut [f32], a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32, f32, f32) -> f32) {
    for (((d, &a), &b), &c) in d.iter_mut().zip(a).zip(b).zip(c) {
        *d = f(a, b, c);
    }
}

/// `d[k] += f(a[k], b[k], c[k])`.
#[inline(always)]
fn add3(d: &mut [f32], a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32, f32, f32) -> f32) {
    for (((d, &a), &b), &c) in d.iter_mut().zip(a).zip(b).zip(c) {
        *d += f(a, b, c);
    }
}

/// `G g Gᵀ` along one axis: the 4 transformed values of a 3-vector.
#[inline(always)]
fn g3(g: [f32; 3]) -> [f32; 4] {
    [
        g[0],
        0.5 * (g[0] + g[1] + g[2]),
        0.5 * (g[0] - g[1] + g[2]),
        g[2],
    ]
}

/// `Gᵀ m` along one axis: the 3 values a transformed 4-vector of weight gradient folds into.
#[inline(always)]
fn gt4(m: [f32; 4]) -> [f32; 3] {
    [
        m[0] + 0.5 * (m[1] + m[2]),
        0.5 * (m[1] - m[2]),
        0.5 * (m[1] + m[2]) + m[3],
    ]
}

impl Winograd {
    /// Whether a convolution should run here: 3×3, stride 1, padding 1, and enough channels on
    /// both sides for the 16 small gemms to beat one im2col gemm (the 3-channel stem has not).
    pub fn applies(c: usize, cout: usize, k: usize, stride: usize, pad: usize) -> bool {
        k == 3 && stride == 1 && pad == 1 && c >= 16 && cout >= 16
    }

    /// 2×2 output blocks (tiles) down and across.
    fn tiles(&self) -> (usize, usize) {
        (self.h.div_ceil(2), self.w.div_ceil(2))
    }

    /// Images per work chunk: the im2col rule ([`super::conv::chunk`]) with a tile (2×2 output
    /// block) as the column, so each of the 16 gemms sees at least as many columns.
    fn chunk(&self) -> usize {
        let (th, tw) = self.tiles();
        super::conv::chunk(self.n, th * tw)
    }

    /// The geometry of a chunk of `b` images.
    fn geometry(&self, b: usize) -> Chunk {
        let (th, tw) = self.tiles();
        Chunk { b, th, tw }
    }

    /// The transformed kernels `U_ξ = (G g Gᵀ)_ξ`, laid out [ξ][c][cout] (`by_input`, the
    /// forward gemm's column-major left operand) or [ξ][cout][c] (the input gradient's).
    fn kernels(&self, wt: &[f32], by_input: bool) -> Vec<f32> {
        let (cc, co) = (self.c, self.cout);
        let len = co * cc;
        let mut u = Vec::with_capacity(16 * len);
        // Blocks of weights in parallel, each writing its part of the 16 planes in order.
        let mut planes: Vec<_> = u.spare_capacity_mut()[..16 * len]
            .chunks_mut(len)
            .map(|p| p.chunks_mut(BLOCK))
            .collect();
        let blocks: Vec<Vec<&mut [MaybeUninit<f32>]>> = (0..len.div_ceil(BLOCK))
            .map(|_| planes.iter_mut().filter_map(Iterator::next).collect())
            .collect();
        blocks
            .into_par_iter()
            .enumerate()
            .for_each(|(bi, mut outs)| {
                for k in 0..outs[0].len() {
                    let at = bi * BLOCK + k;
                    let i = if by_input {
                        (at % co) * cc + at / co
                    } else {
                        at
                    };
                    let g = &wt[9 * i..][..9];
                    let rows = [0, 1, 2].map(|r| g3([g[3 * r], g[3 * r + 1], g[3 * r + 2]]));
                    for b in 0..4 {
                        let col = g3([rows[0][b], rows[1][b], rows[2][b]]);
                        for (a, &v) in col.iter().enumerate() {
                            outs[4 * a + b][k].write(v);
                        }
                    }
                }
            });
        // SAFETY: the blocks cover all 16 planes, and every element was written.
        unsafe { u.set_len(16 * len) };
        u
    }

    /// Copies channel `c` of the chunk's images `x` into the padded layout of [`Chunk`].
    #[inline(always)]
    fn load_padded(&self, ck: Chunk, x: &[f32], c: usize, pad: &mut [f32]) {
        let (hw, rl, b) = (self.h * self.w, ck.row(), ck.b);
        pad.fill(0.0);
        let (e, o) = pad.split_at_mut(pad.len() / 2);
        for j in 0..b {
            let plane = &x[(j * self.c + c) * hw..][..hw];
            for (y, row) in plane.chunks_exact(self.w).enumerate() {
                // Padded column x + 1: x = 2k goes to odd column k, x = 2k + 1 to even k + 1.
                let (er, or) = (&mut e[(y + 1) * rl..][..rl], &mut o[(y + 1) * rl..][..rl]);
                let mut pairs = row.chunks_exact(2);
                for (k, p) in (&mut pairs).enumerate() {
                    or[k * b + j] = p[0];
                    er[(k + 1) * b + j] = p[1];
                }
                if let [last] = pairs.remainder() {
                    or[self.w / 2 * b + j] = *last;
                }
            }
        }
    }

    /// `Bᵀ d B` of every 4×4 tile of one padded channel, written to `v[ξ·xs + column]`.
    #[inline(always)]
    fn input_tiles(&self, ck: Chunk, pad: &[f32], tmp: &mut [f32], v: &mut [f32], xs: usize) {
        let (rl, l, b) = (ck.row(), ck.l(), ck.b);
        let (e, o) = pad.split_at(pad.len() / 2);
        let (te, to) = tmp[..8 * rl].split_at_mut(4 * rl);
        for ty in 0..ck.th {
            // Bᵀ over the tile's 4 rows, for the even and the odd columns.
            for (src, dst) in [(e, &mut *te), (o, &mut *to)] {
                let r = |i: usize| &src[(2 * ty + i) * rl..][..rl];
                let (d0, rest) = dst.split_at_mut(rl);
                let (d1, rest) = rest.split_at_mut(rl);
                let (d2, d3) = rest.split_at_mut(rl);
                map2(d0, r(0), r(2), |a, b| a - b);
                map2(d1, r(1), r(2), |a, b| a + b);
                map2(d2, r(2), r(1), |a, b| a - b);
                map2(d3, r(1), r(3), |a, b| a - b);
            }
            // Bᵀ over the columns: tile tx covers padded columns e[tx], o[tx], e[tx+1], o[tx+1],
            // which are `b` apart in the image-interleaved rows.
            for a in 0..4 {
                let (ea, oa) = (&te[a * rl..][..rl], &to[a * rl..][..rl]);
                let at = |k: usize| (4 * a + k) * xs + ty * l;
                map2(&mut v[at(0)..][..l], ea, &ea[b..], |p, q| p - q);
                map2(&mut v[at(1)..][..l], oa, &ea[b..], |p, q| p + q);
                map2(&mut v[at(2)..][..l], &ea[b..], oa, |p, q| p - q);
                map2(&mut v[at(3)..][..l], oa, &oa[b..], |p, q| p - q);
            }
        }
    }

    /// `Aᵀ m A` of every tile of output channel `co`, from `m[ξ·xs + column]`, written to the
    /// chunk's output `out`.
    #[inline(always)]
    fn output_tiles(
        &self,
        ck: Chunk,
        m: &[f32],
        xs: usize,
        tmp: &mut [f32],
        out: &mut [MaybeUninit<f32>],
        co: usize,
    ) {
        let (l, b) = (ck.l(), ck.b);
        let (hw, w) = (self.h * self.w, self.w);
        let (s, y) = tmp[..10 * l].split_at_mut(8 * l);
        let (y0, y1) = y.split_at_mut(l);
        for ty in 0..ck.th {
            let mt = |xi: usize| &m[xi * xs + ty * l..][..l];
            for k in 0..4 {
                map3(
                    &mut s[k * l..][..l],
                    mt(k),
                    mt(4 + k),
                    mt(8 + k),
                    |p, q, r| p + q + r,
                );
                map3(
                    &mut s[(4 + k) * l..][..l],
                    mt(4 + k),
                    mt(8 + k),
                    mt(12 + k),
                    |p, q, r| p - q - r,
                );
            }
            for a in 0..2 {
                let row = 2 * ty + a;
                if row >= self.h {
                    break;
                }
                let sa = |k: usize| &s[(4 * a + k) * l..][..l];
                map3(y0, sa(0), sa(1), sa(2), |p, q, r| p + q + r);
                map3(y1, sa(1), sa(2), sa(3), |p, q, r| p - q - r);
                for j in 0..b {
                    let orow = &mut out[(j * self.cout + co) * hw + row * w..][..w];
                    for (tx, pr) in orow.chunks_mut(2).enumerate() {
                        pr[0].write(y0[tx * b + j]);
                        if let Some(d) = pr.get_mut(1) {
                            d.write(y1[tx * b + j]);
                        }
                    }
                }
            }
        }
    }

    /// `A e Aᵀ` of every 2×2 block of output-gradient channel `co` of the chunk's `dy`,
    /// written to `ut[ξ·xs + column]` (blocks past an odd edge are zero-filled).
    #[inline(always)]
    fn grad_tiles(
        &self,
        ck: Chunk,
        dy: &[f32],
        co: usize,
        tmp: &mut [f32],
        ut: &mut [f32],
        xs: usize,
    ) {
        let (l, b) = (ck.l(), ck.b);
        let (hw, w) = (self.h * self.w, self.w);
        let (rows, s) = tmp[..12 * l].split_at_mut(4 * l);
        for ty in 0..ck.th {
            // rows[(2i + parity)·l + column]: row 2ty + i of the block, even or odd column.
            rows.fill(0.0);
            for i in 0..2 {
                let y = 2 * ty + i;
                if y >= self.h {
                    break;
                }
                let (re, ro) = rows[2 * i * l..][..2 * l].split_at_mut(l);
                for j in 0..b {
                    let src = &dy[(j * self.cout + co) * hw + y * w..][..w];
                    for (tx, p) in src.chunks(2).enumerate() {
                        re[tx * b + j] = p[0];
                        if let Some(&v) = p.get(1) {
                            ro[tx * b + j] = v;
                        }
                    }
                }
            }
            // A over the rows: (r0, r0 + r1, r0 − r1, −r1), at s[(2a + parity)·l + column].
            for par in 0..2 {
                let (r0, r1) = (&rows[par * l..][..l], &rows[(2 + par) * l..][..l]);
                s[par * l..][..l].copy_from_slice(r0);
                map2(&mut s[(2 + par) * l..][..l], r0, r1, |p, q| p + q);
                map2(&mut s[(4 + par) * l..][..l], r0, r1, |p, q| p - q);
                map2(&mut s[(6 + par) * l..][..l], r1, r1, |p, _| -p);
            }
            // A over the columns of each row a: (p0, p0 + p1, p0 − p1, −p1).
            for a in 0..4 {
                let (p0, p1) = (&s[2 * a * l..][..l], &s[(2 * a + 1) * l..][..l]);
                let at = |k: usize| (4 * a + k) * xs + ty * l;
                ut[at(0)..][..l].copy_from_slice(p0);
                map2(&mut ut[at(1)..][..l], p0, p1, |p, q| p + q);
                map2(&mut ut[at(2)..][..l], p0, p1, |p, q| p - q);
                map2(&mut ut[at(3)..][..l], p1, p1, |p, _| -p);
            }
        }
    }

    /// `B p Bᵀ` of every tile of input-gradient channel `ci`, from `p[ξ·xs + column]`: the
    /// overlapping 4×4 patches are summed in the padded layout, whose interior is written to
    /// the chunk's input gradient `dx`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn data_tiles(
        &self,
        ck: Chunk,
        p: &[f32],
        xs: usize,
        pad: &mut [f32],
        tmp: &mut [f32],
        dx: &mut [MaybeUninit<f32>],
        ci: usize,
    ) {
        let (rl, l, b) = (ck.row(), ck.l(), ck.b);
        let (hw, w) = (self.h * self.w, self.w);
        pad.fill(0.0);
        let half = pad.len() / 2;
        let q = &mut tmp[..4 * l];
        for ty in 0..ck.th {
            let pt = |xi: usize| &p[xi * xs + ty * l..][..l];
            for r in 0..4 {
                // B over the rows: (p0, p1 − p2 + p3, −p0 + p1 + p2, −p3), for each column k.
                for k in 0..4 {
                    let qk = &mut q[k * l..][..l];
                    match r {
                        0 => qk.copy_from_slice(pt(k)),
                        1 => map3(qk, pt(4 + k), pt(8 + k), pt(12 + k), |x, y, z| x - y + z),
                        2 => map3(qk, pt(k), pt(4 + k), pt(8 + k), |x, y, z| y + z - x),
                        _ => map2(qk, pt(12 + k), pt(12 + k), |x, _| -x),
                    }
                }
                // B over the columns, added at padded columns e[tx], o[tx], e[tx+1], o[tx+1].
                let (e, o) = pad.split_at_mut(half);
                let row = 2 * ty + r;
                let (er, or) = (&mut e[row * rl..][..rl], &mut o[row * rl..][..rl]);
                let (q0, rest) = q.split_at(l);
                let (q1, rest) = rest.split_at(l);
                let (q2, q3) = rest.split_at(l);
                add3(er, q0, q0, q0, |x, _, _| x);
                add3(&mut er[b..], q0, q1, q2, |x, y, z| y + z - x);
                add3(or, q1, q2, q3, |x, y, z| x - y + z);
                add3(&mut or[b..], q3, q3, q3, |x, _, _| -x);
            }
        }
        let (e, o) = pad.split_at(half);
        for j in 0..b {
            for y in 0..self.h {
                let drow = &mut dx[(j * self.c + ci) * hw + y * w..][..w];
                let (er, or) = (&e[(y + 1) * rl..][..rl], &o[(y + 1) * rl..][..rl]);
                for (k, d) in drow.chunks_mut(2).enumerate() {
                    d[0].write(or[k * b + j]);
                    if let Some(d1) = d.get_mut(1) {
                        d1.write(er[(k + 1) * b + j]);
                    }
                }
            }
        }
    }

    /// Writes `Bᵀ d B` of the tiles of the chunk's images `x` to `v`, laid out [ξ][c][column].
    #[inline(always)]
    fn transform_inputs(
        &self,
        ck: Chunk,
        x: &[f32],
        pad: &mut [f32],
        tmp: &mut [f32],
        v: &mut [f32],
    ) {
        let t = ck.t();
        for c in 0..self.c {
            self.load_padded(ck, x, c, pad);
            self.input_tiles(ck, pad, tmp, &mut v[c * t..], self.c * t);
        }
    }
}

/// Tile geometry of a chunk of `b` images. Tile columns are ordered (tile row, tile column,
/// image), so one tile row of all the chunk's images is a contiguous run of `l = tw·b` columns
/// and every transform step is an element-wise loop over whole runs, long even for the 4×4
/// maps of a ResNet's last stage. A padded channel is stored as its even padded columns then
/// its odd ones, each `2·th + 2` rows of `(tw + 1)·b` values (column-major over images), so a
/// tile's four columns are whole runs `b` apart.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    b: usize,
    th: usize,
    tw: usize,
}

impl Chunk {
    /// Columns per tile row.
    fn l(&self) -> usize {
        self.tw * self.b
    }

    /// Columns in all.
    fn t(&self) -> usize {
        self.th * self.l()
    }

    /// Length of one padded row (even or odd half).
    fn row(&self) -> usize {
        (self.tw + 1) * self.b
    }

    fn padded_len(&self) -> usize {
        2 * (2 * self.th + 2) * self.row()
    }

    /// Scratch the transforms need besides the padded channel.
    fn tmp_len(&self) -> usize {
        12 * self.row()
    }
}

/// The 16 gemms of one chunk, one per position ξ of the transformed tile: `dst_ξ (m × n) =
/// a_ξ (m × k) · b_ξ (k × n)`, each operand given as (all 16 matrices back to back, column
/// stride, row stride).
fn per_position(
    (m, n, k): (usize, usize, usize),
    dst: &mut [MaybeUninit<f32>],
    (a, a_cs, a_rs): (&[f32], usize, usize),
    (b, b_cs, b_rs): (&[f32], usize, usize),
) {
    for xi in 0..16 {
        mm(
            m,
            n,
            k,
            &mut dst[xi * m * n..][..m * n],
            false,
            &a[xi * m * k..][..m * k],
            a_cs as isize,
            a_rs as isize,
            &b[xi * k * n..][..k * n],
            b_cs as isize,
            b_rs as isize,
        );
    }
}

impl CustomOp2 for Winograd {
    fn name(&self) -> &'static str {
        "conv2d-winograd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = super::contiguous_f32(s1, l1, "conv")?;
        let u = self.kernels(super::contiguous_f32(s2, l2, "conv")?, true);
        let (co, cc) = (self.cout, self.c);
        let (img, oimg) = (cc * self.h * self.w, co * self.h * self.w);
        let chunk = self.chunk();
        let out = super::par_filled(self.n * oimg, 0, oimg * chunk, |ci, o| {
            let ck = self.geometry(o.len() / oimg);
            let t = ck.t();
            let x = &x[ci * chunk * img..][..ck.b * img];
            let rest = ck.padded_len() + ck.tmp_len();
            with_scratch([16 * cc * t, 16 * co * t, rest], |v, m, rest| {
                let (pad, tmp) = rest.split_at_mut(ck.padded_len());
                with_simd(|| self.transform_inputs(ck, x, pad, tmp, v));
                // M_ξ (cout × t) = U_ξ (cout × c) · V_ξ (c × t)
                per_position((co, t, cc), as_uninit(m), (&u, co, 1), (v, 1, t));
                with_simd(|| {
                    for c in 0..co {
                        self.output_tiles(ck, &m[c * t..], co * t, tmp, o, c);
                    }
                });
            });
        });
        Ok((
            CpuStorage::F32(out),
            Shape::from((self.n, self.cout, self.h, self.w)),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        super::conv::backward(x, w, grad, &WinogradBwd(*self))
    }
}

/// Backward: packed [dx; dW].
struct WinogradBwd(Winograd);

impl CustomOp3 for WinogradBwd {
    fn name(&self) -> &'static str {
        "conv2d-winograd-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let wg = &self.0;
        let x = super::contiguous_f32(s1, l1, "conv")?;
        let u = wg.kernels(super::contiguous_f32(s2, l2, "conv")?, false);
        let dy = super::contiguous_f32(s3, l3, "conv")?;
        let (co, cc) = (wg.cout, wg.c);
        let (img, oimg) = (cc * wg.h * wg.w, co * wg.h * wg.w);
        let chunk = wg.chunk();
        let (mut dx, partials) =
            super::par_fill_collect(wg.n * img, co * cc * 9, img * chunk, |ci, dxc| {
                let ck = wg.geometry(dxc.len() / img);
                let t = ck.t();
                let x = &x[ci * chunk * img..][..ck.b * img];
                let g = &dy[ci * chunk * oimg..][..ck.b * oimg];
                let rest = 16 * cc * t + ck.padded_len() + ck.tmp_len();
                with_scratch([16 * cc * t, 16 * co * t, rest], |v, ut, rest| {
                    let (p, rest) = rest.split_at_mut(16 * cc * t);
                    let (pad, tmp) = rest.split_at_mut(ck.padded_len());
                    with_simd(|| {
                        wg.transform_inputs(ck, x, pad, tmp, v);
                        for c in 0..co {
                            wg.grad_tiles(ck, g, c, tmp, &mut ut[c * t..], co * t);
                        }
                    });
                    // Weight gradient, transformed: Mw_ξ (cout × c) = Ũ_ξ (cout × t) · V_ξᵀ.
                    let mut mw = Vec::with_capacity(16 * co * cc);
                    per_position((co, cc, t), mw.spare_capacity_mut(), (ut, 1, t), (v, t, 1));
                    // SAFETY: the 16 gemms above wrote all 16 · cout · c elements.
                    unsafe { mw.set_len(16 * co * cc) };
                    // Input gradient, transformed: P_ξ (c × t) = U_ξᵀ (c × cout) · Ũ_ξ.
                    per_position((cc, t, co), as_uninit(p), (&u, cc, 1), (ut, 1, t));
                    with_simd(|| {
                        for c in 0..cc {
                            wg.data_tiles(ck, &p[c * t..], cc * t, pad, tmp, dxc, c);
                        }
                    });
                    mw
                })
            });
        // Sum the chunks' transformed partials in chunk order, then fold each 4×4 into 3×3
        // (both in parallel over blocks of weights; each sum keeps its order).
        let len = co * cc;
        let mut parts = partials.into_iter();
        let mut mw = parts.next().expect("a batch has at least one chunk");
        let rest: Vec<Vec<f32>> = parts.collect();
        mw.par_chunks_mut(BLOCK).enumerate().for_each(|(bi, dst)| {
            for part in &rest {
                for (a, b) in dst.iter_mut().zip(&part[bi * BLOCK..]) {
                    *a += b;
                }
            }
        });
        let dw_at = dx.len();
        dx.spare_capacity_mut()[..9 * len]
            .par_chunks_mut(9 * BLOCK)
            .enumerate()
            .for_each(|(bi, out)| {
                for (k, g) in out.chunks_exact_mut(9).enumerate() {
                    let m = |xi: usize| mw[xi * len + bi * BLOCK + k];
                    let rows = [0, 1, 2, 3]
                        .map(|a| gt4([m(4 * a), m(4 * a + 1), m(4 * a + 2), m(4 * a + 3)]));
                    for l in 0..3 {
                        let col = gt4([rows[0][l], rows[1][l], rows[2][l], rows[3][l]]);
                        for (r, &val) in col.iter().enumerate() {
                            g[3 * r + l].write(val);
                        }
                    }
                }
            });
        // SAFETY: par_fill_collect reserved room for dW, and the fold wrote all of it.
        unsafe { dx.set_len(dw_at + 9 * len) };
        let len = dx.len();
        Ok((CpuStorage::F32(dx), Shape::from(len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_candle_conv_forward_and_backward() {
        // (n, c, h, w, cout): even and odd sizes, maps down to 1×1, chunks that do not divide n,
        // more weights than one parallel block of the kernel transforms.
        for &(n, c, h, w, cout) in &[
            (3, 2, 8, 8, 4),
            (2, 3, 7, 7, 5),
            (5, 4, 5, 9, 3),
            (9, 2, 1, 1, 3),
            (2, 16, 2, 3, 16),
            (17, 5, 4, 4, 6),
            (42, 3, 6, 6, 2),
            (4, 8, 12, 10, 8),
            (5, 70, 3, 4, 65),
        ] {
            let op = Winograd { n, c, h, w, cout };
            crate::nn::assert_conv_matches_candle((n, c, h, w), (cout, 3, 1, 1), |x, wt| {
                x.apply_op2(wt, op).unwrap()
            });
        }
    }
}

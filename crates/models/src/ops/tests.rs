//! The fast kernels against candle's own ops: equal forward and backward (gradients of input and
//! weight), plus numeric gradients where candle has no backward pass.

use candle_core::{D, DType, Device, Result, Tensor, Var};
use candle_nn::{Init, VarBuilder};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

use super::*;
use crate::models::Ctx;
use crate::params::ParamStore;

/// Uniform in [-1, 1), deterministic from `seed`.
pub(crate) fn rand(shape: &[usize], seed: u64, dtype: DType) -> Result<Tensor> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu)?.to_dtype(dtype)
}

pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a.to_dtype(DType::F64)? - b.to_dtype(DType::F64)?)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f64>()
}

/// `|a - b| <= tol · max(1, max|b|)`, with a message naming the quantity.
pub(crate) fn assert_close(what: &str, a: &Tensor, b: &Tensor, tol: f64) -> Result<()> {
    let scale = b
        .to_dtype(DType::F64)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f64>()?
        .max(1.0);
    let d = max_abs_diff(a, b)?;
    assert!(
        d <= tol * scale,
        "{what}: max difference {d:e} > {tol:e} × {scale}"
    );
    Ok(())
}

fn nchw(x: &Tensor) -> Result<Tensor> {
    x.permute((0, 3, 1, 2))?.contiguous()
}

fn nhwc(x: &Tensor) -> Result<Tensor> {
    x.permute((0, 2, 3, 1))?.contiguous()
}

/// Output, input gradient and weight gradient of `loss = Σ f(x, w) · r`.
fn run_with_grads(
    x: &Tensor,
    w: &Tensor,
    r_seed: u64,
    f: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
) -> Result<(Tensor, Tensor, Tensor)> {
    let xv = Var::from_tensor(x)?;
    let wv = Var::from_tensor(w)?;
    let y = f(xv.as_tensor(), wv.as_tensor())?;
    let r = rand(y.dims(), r_seed, y.dtype())?;
    let grads = (&y * &r)?.sum_all()?.backward()?;
    let gx = grads.get(xv.as_tensor()).expect("input gradient").clone();
    let gw = grads.get(wv.as_tensor()).expect("weight gradient").clone();
    Ok((y, gx, gw))
}

/// candle's own convolution (NCHW), with explicit asymmetric padding.
fn candle_reference(x_nchw: &Tensor, w: &Tensor, g: &Geometry, groups: usize) -> Result<Tensor> {
    let x = x_nchw
        .pad_with_zeros(2, g.pad_top, g.pad_bottom)?
        .pad_with_zeros(3, g.pad_left, g.pad_right)?;
    x.conv2d(w, 0, g.stride, 1, groups)
}

fn geometry(k: usize, stride: usize, pads: [usize; 4]) -> Geometry {
    Geometry {
        kh: k,
        kw: k,
        stride,
        pad_top: pads[0],
        pad_bottom: pads[1],
        pad_left: pads[2],
        pad_right: pads[3],
    }
}

#[test]
fn dense_convolutions_equal_candle_forward_and_backward() -> Result<()> {
    // (k, stride, padding top/bottom/left/right, input h, w). With stride 2, h and w leave the
    // same remainder: candle's conv2d backward uses the height's output padding for the width too.
    let cases = [
        (1, 1, [0, 0, 0, 0], 6, 7),
        (1, 2, [0, 0, 0, 0], 6, 8),
        (3, 1, [1, 1, 1, 1], 7, 6),
        (3, 2, [1, 1, 1, 1], 8, 8),
        (3, 2, [0, 1, 0, 1], 8, 10),
        (5, 2, [1, 2, 1, 2], 9, 11),
        (7, 2, [3, 3, 3, 3], 10, 10),
    ];
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 2e-5)] {
        for (i, &(k, s, pads, h, w)) in cases.iter().enumerate() {
            let g = geometry(k, s, pads);
            let (b, c_in, c_out) = (2, 5, 4);
            let x = rand(&[b, h, w, c_in], 10 + i as u64, dtype)?;
            let wt = rand(&[c_out, c_in, k, k], 20 + i as u64, dtype)?;
            let (y, gx, gw) = run_with_grads(&x, &wt, 30, |x, w| conv2d_nhwc(x, w, &g))?;
            // The same loss, through candle's convolution on NCHW.
            let r = rand(y.dims(), 30, dtype)?;
            let xv = Var::from_tensor(&nchw(&x)?)?;
            let wv = Var::from_tensor(&wt)?;
            let y2 = candle_reference(xv.as_tensor(), wv.as_tensor(), &g, 1)?;
            let grads = (&nhwc(&y2)? * &r)?.sum_all()?.backward()?;
            let what = format!("{dtype:?} k{k} s{s} {pads:?} {h}×{w}");
            assert_close(&format!("{what} forward"), &y, &nhwc(&y2)?, tol)?;
            assert_close(
                &format!("{what} input grad"),
                &gx,
                &nhwc(grads.get(xv.as_tensor()).unwrap())?,
                tol,
            )?;
            assert_close(
                &format!("{what} weight grad"),
                &gw,
                grads.get(wv.as_tensor()).unwrap(),
                tol,
            )?;
        }
    }
    Ok(())
}

#[test]
fn depthwise_convolutions_equal_candle_forward_and_backward() -> Result<()> {
    let cases = [
        (3, 1, [1, 1, 1, 1], 7, 6),
        (3, 2, [0, 1, 0, 1], 8, 8),
        (5, 1, [2, 2, 2, 2], 6, 7),
        (5, 2, [1, 2, 1, 2], 8, 10),
        (3, 2, [1, 1, 1, 1], 9, 9),
    ];
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 2e-5)] {
        for (i, &(k, s, pads, h, w)) in cases.iter().enumerate() {
            let g = geometry(k, s, pads);
            let (b, c) = (3, 6);
            let x = rand(&[b, h, w, c], 40 + i as u64, dtype)?;
            let wt = rand(&[c, 1, k, k], 50 + i as u64, dtype)?;
            let (y, gx, gw) = run_with_grads(&x, &wt, 60, |x, w| depthwise_conv2d_nhwc(x, w, &g))?;
            let r = rand(y.dims(), 60, dtype)?;
            let xv = Var::from_tensor(&nchw(&x)?)?;
            let wv = Var::from_tensor(&wt)?;
            let y2 = candle_reference(xv.as_tensor(), wv.as_tensor(), &g, c)?;
            let grads = (&nhwc(&y2)? * &r)?.sum_all()?.backward()?;
            let what = format!("depthwise {dtype:?} k{k} s{s} {pads:?} {h}×{w}");
            assert_close(&format!("{what} forward"), &y, &nhwc(&y2)?, tol)?;
            assert_close(
                &format!("{what} input grad"),
                &gx,
                &nhwc(grads.get(xv.as_tensor()).unwrap())?,
                tol,
            )?;
            assert_close(
                &format!("{what} weight grad"),
                &gw,
                grads.get(wv.as_tensor()).unwrap(),
                tol,
            )?;
        }
    }
    Ok(())
}

#[test]
fn im2col_and_col2im_are_adjoint() -> Result<()> {
    // <im2col(x), y> = <x, col2im(y)> for every geometry: col2im is im2col's exact transpose.
    for (i, g) in [
        geometry(3, 1, [1, 1, 1, 1]),
        geometry(5, 2, [1, 2, 2, 1]),
        geometry(2, 3, [0, 0, 0, 0]),
    ]
    .iter()
    .enumerate()
    {
        let x = rand(&[2, 7, 8, 3], 70 + i as u64, DType::F64)?;
        let cols = im2col_nhwc(&x, g)?;
        let y = rand(cols.dims(), 80 + i as u64, DType::F64)?;
        let lhs = (&cols * &y)?.sum_all()?.to_scalar::<f64>()?;
        let back = col2im_nhwc(&y, g, (2, 7, 8, 3))?;
        let rhs = (&x * &back)?.sum_all()?.to_scalar::<f64>()?;
        assert!((lhs - rhs).abs() < 1e-9, "{g:?}: {lhs} vs {rhs}");
    }
    Ok(())
}

/// candle's max pool (forward only when kernel ≠ stride) on an input padded with -∞.
fn candle_max_pool(x_nchw: &Tensor, k: usize, s: usize, p: usize) -> Result<Tensor> {
    let (b, c, h, w) = x_nchw.dims4()?;
    let ninf = |shape: (usize, usize, usize, usize)| {
        Tensor::full(f64::NEG_INFINITY, shape, &Device::Cpu)?.to_dtype(x_nchw.dtype())
    };
    let x = Tensor::cat(&[&ninf((b, c, p, w))?, x_nchw, &ninf((b, c, p, w))?], 2)?;
    let x = Tensor::cat(
        &[
            &ninf((b, c, h + 2 * p, p))?,
            &x,
            &ninf((b, c, h + 2 * p, p))?,
        ],
        3,
    )?;
    x.max_pool2d_with_stride(k, s)
}

/// Numeric gradient of `Σ f(x) · r` by central differences, element by element.
fn numeric_grad(x: &Tensor, r: &Tensor, f: &dyn Fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    let h = 1e-6;
    let base = x.flatten_all()?.to_vec1::<f64>()?;
    let loss = |v: &[f64]| -> Result<f64> {
        let t = Tensor::from_slice(v, x.dims(), &Device::Cpu)?;
        (f(&t)? * r)?.sum_all()?.to_scalar::<f64>()
    };
    let mut out = vec![0.0; base.len()];
    for i in 0..base.len() {
        let mut v = base.clone();
        v[i] += h;
        let up = loss(&v)?;
        v[i] -= 2.0 * h;
        out[i] = (up - loss(&v)?) / (2.0 * h);
    }
    Tensor::from_vec(out, x.dims(), &Device::Cpu)
}

#[test]
fn max_pools_equal_candle_forward_and_numeric_gradients() -> Result<()> {
    for (i, (h, w)) in [(8, 8), (7, 9), (10, 5)].into_iter().enumerate() {
        let x = rand(&[2, h, w, 3], 90 + i as u64, DType::F64)?;
        let reference = nhwc(&candle_max_pool(&nchw(&x)?, 3, 2, 1)?)?;
        let fast = max_pool2d_nhwc(&x, 3, 2, 1)?;
        let composite_nhwc = max_pool2d_composite(&x, 3, 2, 1, Backend::Fast)?;
        let composite_nchw = nhwc(&max_pool2d_composite(&nchw(&x)?, 3, 2, 1, Backend::Candle)?)?;
        for (what, y) in [
            ("fast", &fast),
            ("composite nhwc", &composite_nhwc),
            ("composite nchw", &composite_nchw),
        ] {
            assert_eq!(max_abs_diff(y, &reference)?, 0.0, "{what} {h}×{w} forward");
        }
        let r = rand(fast.dims(), 100 + i as u64, DType::F64)?;
        let numeric = numeric_grad(&x, &r, &|t| max_pool2d_nhwc(t, 3, 2, 1))?;
        for (what, f) in [
            (
                "fast",
                &(|t: &Tensor| max_pool2d_nhwc(t, 3, 2, 1)) as &dyn Fn(&Tensor) -> Result<Tensor>,
            ),
            ("composite", &|t: &Tensor| {
                max_pool2d_composite(t, 3, 2, 1, Backend::Fast)
            }),
        ] {
            let xv = Var::from_tensor(&x)?;
            let grads = (f(xv.as_tensor())? * &r)?.sum_all()?.backward()?;
            assert_close(
                &format!("{what} {h}×{w} gradient"),
                grads.get(xv.as_tensor()).unwrap(),
                &numeric,
                1e-6,
            )?;
        }
    }
    Ok(())
}

#[test]
fn max_pool_gradient_goes_to_the_first_maximum_like_pytorch() -> Result<()> {
    // All equal: each window's gradient goes to its first element in scan order.
    let x = Var::from_tensor(&Tensor::zeros((1, 4, 4, 1), DType::F64, &Device::Cpu)?)?;
    let y = max_pool2d_nhwc(x.as_tensor(), 3, 2, 1)?;
    let g = y.sum_all()?.backward()?;
    let g = g
        .get(x.as_tensor())
        .unwrap()
        .flatten_all()?
        .to_vec1::<f64>()?;
    // Windows start at (-1,-1), (-1,1), (1,-1), (1,1): first valid elements (0,0), (0,1), (1,0), (1,1).
    let mut want = vec![0.0; 16];
    for i in [0, 1, 4, 5] {
        want[i] = 1.0;
    }
    assert_eq!(g, want);
    Ok(())
}

#[test]
fn avg_pool_downsample_equals_candle_and_pytorch_ceil_mode() -> Result<()> {
    // Even sizes: candle's avg_pool2d.
    let x = rand(&[2, 8, 6, 3], 110, DType::F64)?;
    let reference = nhwc(&nchw(&x)?.avg_pool2d(2)?)?;
    assert_close(
        "even nhwc",
        &avg_pool2x2_ceil(&x, Backend::Fast)?,
        &reference,
        1e-12,
    )?;
    assert_close(
        "even nchw",
        &nhwc(&avg_pool2x2_ceil(&nchw(&x)?, Backend::Candle)?)?,
        &reference,
        1e-12,
    )?;
    // Odd sizes: ceil_mode=True, count_include_pad=False, by hand.
    let (h, w) = (5, 3);
    let x = rand(&[1, h, w, 2], 111, DType::F64)?;
    let v = x.flatten_all()?.to_vec1::<f64>()?;
    let mut want = Vec::new();
    for oy in 0..3 {
        for ox in 0..2 {
            for c in 0..2 {
                let (mut sum, mut n) = (0.0, 0.0);
                for y in 2 * oy..(2 * oy + 2).min(h) {
                    for xx in 2 * ox..(2 * ox + 2).min(w) {
                        sum += v[(y * w + xx) * 2 + c];
                        n += 1.0;
                    }
                }
                want.push(sum / n);
            }
        }
    }
    let want = Tensor::from_vec(want, (1, 3, 2, 2), &Device::Cpu)?;
    assert_close(
        "odd nhwc",
        &avg_pool2x2_ceil(&x, Backend::Fast)?,
        &want,
        1e-12,
    )?;
    assert_close(
        "odd nchw",
        &nhwc(&avg_pool2x2_ceil(&nchw(&x)?, Backend::Candle)?)?,
        &want,
        1e-12,
    )?;
    let r = rand(&[1, 3, 2, 2], 112, DType::F64)?;
    let numeric = numeric_grad(&x, &r, &|t| avg_pool2x2_ceil(t, Backend::Fast))?;
    let xv = Var::from_tensor(&x)?;
    let grads = (avg_pool2x2_ceil(xv.as_tensor(), Backend::Fast)? * &r)?
        .sum_all()?
        .backward()?;
    assert_close(
        "odd gradient",
        grads.get(xv.as_tensor()).unwrap(),
        &numeric,
        1e-6,
    )?;
    Ok(())
}

/// A batch norm with non-trivial parameters and running statistics.
fn batch_norm(c: usize, dtype: DType, seed: u64) -> Result<(BatchNorm, ParamStore)> {
    let store = ParamStore::new(seed);
    let vb: VarBuilder = store.var_builder(dtype, &Device::Cpu);
    let bn = BatchNorm::new(c, 1e-3, 0.1, Init::Const(1.0), vb.pp("bn"))?;
    for (name, offset) in [
        ("bn.weight", 1.0),
        ("bn.bias", 0.0),
        ("bn.running_mean", 0.0),
        ("bn.running_var", 1.5),
    ] {
        let v = store.get(name).unwrap();
        v.set(&(rand(&[c], seed + name.len() as u64, dtype)?.affine(0.5, offset))?)?;
    }
    Ok((bn, store))
}

#[test]
fn fused_batch_norm_equals_the_composite() -> Result<()> {
    // act(bn(x) [+ r]) on the fast backend (one fused op) and as candle ops: outputs, gradients
    // of input, weight, bias and residual, and the running statistics.
    let c = 5;
    for act in [Activation::None, Activation::Relu, Activation::Relu6] {
        for train in [true, false] {
            for residual in [false, true] {
                // Values up to ±8 so that ReLU6 clips on both sides.
                let x = rand(&[3, 4, 6, c], 120, DType::F64)?.affine(8.0, 0.0)?;
                let r = rand(&[3, 4, 6, c], 122, DType::F64)?.affine(2.0, 0.0)?;
                let mut outs = Vec::new();
                for backend in [Backend::Fast, Backend::Candle] {
                    let (bn, store) = batch_norm(c, DType::F64, 7)?;
                    let layout = |t: &Tensor| match backend {
                        Backend::Fast => Ok(t.clone()),
                        Backend::Candle => nchw(t),
                    };
                    let back = |t: &Tensor| match backend {
                        Backend::Fast => Ok(t.clone()),
                        Backend::Candle => nhwc(t),
                    };
                    let xv = Var::from_tensor(&layout(&x)?)?;
                    let rv = Var::from_tensor(&layout(&r)?)?;
                    let ctx = Ctx::new(train, backend);
                    let y = if residual {
                        bn.forward_add(xv.as_tensor(), rv.as_tensor(), act, &ctx)?
                    } else {
                        bn.forward(xv.as_tensor(), act, &ctx)?
                    };
                    let y = back(&y)?;
                    let weights = rand(y.dims(), 121, DType::F64)?;
                    let grads = (&y * &weights)?.sum_all()?.backward()?;
                    let w = store.get("bn.weight").unwrap();
                    let b = store.get("bn.bias").unwrap();
                    let gr = match grads.get(rv.as_tensor()) {
                        Some(g) => back(g)?,
                        None => Tensor::zeros(y.dims(), DType::F64, &Device::Cpu)?,
                    };
                    outs.push([
                        y.clone(),
                        back(grads.get(xv.as_tensor()).unwrap())?,
                        grads.get(w.as_tensor()).unwrap().clone(),
                        grads.get(b.as_tensor()).unwrap().clone(),
                        gr,
                        bn.running_mean().clone(),
                        bn.running_var().clone(),
                    ]);
                }
                let what = format!("{act:?} train={train} residual={residual}");
                for (i, part) in [
                    "forward",
                    "input grad",
                    "weight grad",
                    "bias grad",
                    "residual grad",
                    "running mean",
                    "running var",
                ]
                .iter()
                .enumerate()
                {
                    assert_close(&format!("{what} {part}"), &outs[0][i], &outs[1][i], 1e-10)?;
                }
            }
        }
    }
    Ok(())
}

#[test]
fn batch_norm_training_matches_candle_nn_including_running_statistics() -> Result<()> {
    // candle-nn's BatchNorm updates its running statistics in forward_t(train = true); ours must
    // give the same output and the same statistics (PyTorch's rule, unbiased variance).
    let c = 4;
    let (ours, store) = batch_norm(c, DType::F64, 3)?;
    let get = |n: &str| store.get(n).unwrap().as_tensor().copy();
    let theirs = candle_nn::BatchNorm::new_with_momentum(
        c,
        get("bn.running_mean")?,
        get("bn.running_var")?,
        get("bn.weight")?,
        get("bn.bias")?,
        1e-3,
        0.1,
    )?;
    let x = rand(&[6, c, 5, 3], 130, DType::F64)?.affine(3.0, 1.0)?;
    for step in 0..3 {
        let x = x.affine(1.0 + step as f64, step as f64)?;
        let y_theirs = candle_nn::ModuleT::forward_t(&theirs, &x, true)?;
        let y_ours = ours.forward(&x, Activation::None, &Ctx::new(true, Backend::Candle))?;
        let y_fast = ours.forward(
            &nhwc(&x)?,
            Activation::None,
            &Ctx::new(false, Backend::Fast),
        )?;
        assert_close("train output", &y_ours, &y_theirs, 1e-10)?;
        assert_close(
            "running mean",
            ours.running_mean(),
            theirs.running_mean(),
            1e-10,
        )?;
        assert_close(
            "running var",
            ours.running_var(),
            theirs.running_var(),
            1e-10,
        )?;
        let y_eval = candle_nn::ModuleT::forward_t(&theirs, &x, false)?;
        assert_close("eval output", &y_fast, &nhwc(&y_eval)?, 1e-10)?;
    }
    Ok(())
}

#[test]
fn same_padding_is_tensorflows() {
    // TensorFlow: out = ceil(in / s), total = max((out - 1)·s + k - in, 0), the odd pixel at the end.
    for (k, s, size, want) in [
        (3, 2, 224, (0, 1)),
        (3, 1, 56, (1, 1)),
        (5, 2, 56, (1, 2)),
        (5, 1, 14, (2, 2)),
        (1, 1, 7, (0, 0)),
        (3, 2, 7, (1, 1)),
    ] {
        let store = ParamStore::new(0);
        let vb = store.var_builder(DType::F32, &Device::Cpu);
        let conv = Conv2d::new(4, 4, k, s, Padding::Same, 1, 0.1, vb).unwrap();
        let g = conv.geometry(size, size);
        assert_eq!((g.pad_top, g.pad_bottom), want, "k{k} s{s} in {size}");
        assert_eq!((g.pad_left, g.pad_right), want);
        assert_eq!(g.out_hw(size, size).unwrap().0, size.div_ceil(s));
    }
}

#[test]
fn conv_layer_backends_agree() -> Result<()> {
    // The layer dispatch: dense, pointwise and depthwise, symmetric and SAME padding.
    for (c_in, c_out, k, s, pad, groups) in [
        (4, 6, 3, 2, Padding::Symmetric(1), 1),
        (4, 6, 1, 1, Padding::Symmetric(0), 1),
        (6, 6, 5, 2, Padding::Same, 6),
        (6, 6, 3, 1, Padding::Same, 6),
        (4, 8, 3, 1, Padding::Same, 2),
    ] {
        let store = ParamStore::new(1);
        let vb = store.var_builder(DType::F64, &Device::Cpu);
        let conv = Conv2d::new(c_in, c_out, k, s, pad, groups, 0.3, vb.pp("c"))?;
        let x = rand(&[2, c_in, 8, 8], 140, DType::F64)?;
        let fast = conv.forward(&nhwc(&x)?, &Ctx::new(true, Backend::Fast))?;
        let reference = conv.forward(&x, &Ctx::new(true, Backend::Candle))?;
        assert_close(
            &format!("{c_in}->{c_out} k{k} s{s} {pad:?} g{groups}"),
            &fast,
            &nhwc(&reference)?,
            1e-12,
        )?;
    }
    Ok(())
}

#[test]
fn global_pool_layouts_agree() -> Result<()> {
    let x = rand(&[2, 3, 4, 5], 150, DType::F64)?;
    let a = global_avg_pool(&x, Backend::Candle)?;
    let b = global_avg_pool(&nhwc(&x)?, Backend::Fast)?;
    assert_close("pool", &a, &b, 1e-12)?;
    assert_close("pool mean", &a, &x.mean(D::Minus1)?.mean(D::Minus1)?, 1e-12)
}

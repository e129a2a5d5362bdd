//! The loss. The figures computed from predictions and the decision threshold are in
//! [`lennonnet_records::scores`].

use candle_core::{D, DType, Tensor};

/// Cross-entropy with label smoothing and per-class weights, as PyTorch's
/// `cross_entropy(weight=w, label_smoothing=ε)`: the target of a sample of class `y` is
/// `(1 - ε) · onehot(y) + ε / C`, its loss `-Σ_c target_c · log p_c` is multiplied by `w_y`,
/// and the batch loss is `Σ w_y · loss / Σ w_y`.
pub fn cross_entropy(
    logits: &Tensor,
    labels: &[u32],
    class_weights: &[f32],
    smoothing: f64,
) -> candle_core::Result<Tensor> {
    let logits = logits.to_dtype(DType::F32)?;
    let (b, c) = logits.dims2()?;
    assert_eq!(b, labels.len());
    let off = (smoothing / c as f64) as f32;
    let on = (1.0 - smoothing) as f32 + off;
    let mut target = vec![off; b * c];
    let mut weights = Vec::with_capacity(b);
    for (i, &y) in labels.iter().enumerate() {
        target[i * c + y as usize] = on;
        weights.push(class_weights[y as usize]);
    }
    let total: f32 = weights.iter().sum();
    let device = logits.device();
    let target = Tensor::from_vec(target, (b, c), device)?;
    let weights = Tensor::from_vec(weights, b, device)?;
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let per_sample = (target * logp)?.sum(D::Minus1)?.neg()?;
    (per_sample * weights)?.sum_all()? / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn cross_entropy_matches_a_hand_computation() -> candle_core::Result<()> {
        let logits = Tensor::new(&[[2f32, 0.0], [0.0, 1.0], [1.0, 1.0]], &Device::Cpu)?;
        let labels = [0u32, 1, 0];
        let lse = |a: f64, b: f64| (a.exp() + b.exp()).ln();
        let nll = [
            (lse(2.0, 0.0) - 2.0, lse(2.0, 0.0)),
            (lse(0.0, 1.0), lse(0.0, 1.0) - 1.0),
            (lse(1.0, 1.0) - 1.0, lse(1.0, 1.0) - 1.0),
        ];
        // -log p(class) for (class 0, class 1) of each row; the true class: 0, 1, 0.
        let check = |weights: [f32; 2], eps: f64| -> candle_core::Result<()> {
            let got = cross_entropy(&logits, &labels, &weights, eps)?.to_scalar::<f32>()? as f64;
            let mut num = 0.0;
            let mut den = 0.0;
            for (i, &y) in labels.iter().enumerate() {
                let (n0, n1) = nll[i];
                let (t0, t1) = if y == 0 {
                    (1.0 - eps + eps / 2.0, eps / 2.0)
                } else {
                    (eps / 2.0, 1.0 - eps + eps / 2.0)
                };
                let w = weights[y as usize] as f64;
                num += w * (t0 * n0 + t1 * n1);
                den += w;
            }
            assert!((got - num / den).abs() < 1e-6, "{got} {}", num / den);
            Ok(())
        };
        check([1.0, 1.0], 0.0)?;
        check([1.0, 1.0], 0.1)?;
        check([0.25, 3.0], 0.1)?;
        Ok(())
    }
}

//! The learning-rate schedule: linear warm-up, then a cosine decay to a fraction of the base.

/// `lr(step)` for steps `0..total_steps`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    pub base: f64,
    pub warmup_steps: u64,
    pub total_steps: u64,
    /// The learning rate at the end, as a fraction of `base`.
    pub final_fraction: f64,
}

impl LrSchedule {
    /// The learning rate of step `step` (0-based): `base · (step + 1) / warmup_steps` during the
    /// warm-up, then `final + (base - final) · (1 + cos(π t)) / 2` with `t` going from 0 at the
    /// end of the warm-up to 1 at the last step.
    pub fn at(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.base * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let last = self.base * self.final_fraction;
        let span = self.total_steps.saturating_sub(self.warmup_steps);
        if span <= 1 {
            return self.base;
        }
        let t = ((step - self.warmup_steps) as f64 / (span - 1) as f64).min(1.0);
        last + (self.base - last) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_linearly_then_decays_by_cosine() {
        let s = LrSchedule {
            base: 1.0,
            warmup_steps: 4,
            total_steps: 14,
            final_fraction: 0.1,
        };
        let lrs: Vec<f64> = (0..14).map(|i| s.at(i)).collect();
        assert_eq!(&lrs[..4], &[0.25, 0.5, 0.75, 1.0]);
        assert!((lrs[4] - 1.0).abs() < 1e-12, "{lrs:?}");
        assert!((lrs[13] - 0.1).abs() < 1e-12, "{lrs:?}");
        // The midpoint of the decay is halfway between base and final.
        let mid = s.at(4 + 9 / 2);
        assert!((0.5..0.65).contains(&mid), "{mid}");
        assert!(lrs[4..].windows(2).all(|w| w[1] <= w[0]), "{lrs:?}");
        // Past the end it stays at the final value; no warm-up starts at base.
        assert!((s.at(100) - 0.1).abs() < 1e-12);
        let flat = LrSchedule {
            warmup_steps: 0,
            ..s
        };
        assert_eq!(flat.at(0), 1.0);
    }
}

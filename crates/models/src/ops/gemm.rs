//! Matrix products on slices, through the `gemm` crate (the one candle's CPU matmul uses).

use super::Real;

/// A matrix operand: a slice with row and column strides (in elements).
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a, T> Mat<'a, T> {
    /// A row-major `rows × cols` matrix.
    pub fn rows(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `dst = a · b`, `dst` row-major `a.rows × b.cols`. Parallel over candle's thread count. The
/// result does not depend on the thread count: `gemm` splits the output, not the sum (tested).
pub(crate) fn matmul<T: Real>(a: Mat<T>, b: Mat<T>, dst: &mut [T]) {
    matmul_threads(a, b, dst, candle_core::utils::get_num_threads())
}

pub(crate) fn matmul_threads<T: Real>(a: Mat<T>, b: Mat<T>, dst: &mut [T], threads: usize) {
    assert_eq!(a.cols, b.rows, "matmul: inner dimensions");
    assert!(a.fits() && b.fits(), "matmul: operand out of bounds");
    assert_eq!(dst.len(), a.rows * b.cols, "matmul: destination size");
    if dst.is_empty() {
        return;
    }
    if a.cols == 0 {
        dst.fill(T::zero());
        return;
    }
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the bounds of every operand were checked above; dst is exclusively borrowed and
    // row-major with the asserted size.
    unsafe {
        gemm::gemm(
            a.rows,
            b.cols,
            a.cols,
            dst.as_mut_ptr(),
            1,
            b.cols as isize,
            false,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            T::zero(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_do_not_depend_on_the_thread_count() {
        let (m, k, n) = (301, 517, 129);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919) % 1000) as f32 / 997.0 - 0.5)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 104_729) % 1000) as f32 / 991.0 - 0.5)
            .collect();
        let run = |threads| {
            let mut out = vec![0f32; m * n];
            matmul_threads(Mat::rows(&a, m, k), Mat::rows(&b, k, n), &mut out, threads);
            out
        };
        let one = run(1);
        for threads in [2, 3, 4] {
            assert!(run(threads) == one, "{threads} threads give other bits");
        }
        // Against a plain triple loop.
        let mut worst = 0f32;
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
                worst = worst.max((want - one[i * n + j]).abs());
            }
        }
        assert!(worst < 1e-3, "{worst}");
        // A transposed operand.
        let mut t = vec![0f32; n * m];
        matmul_threads(Mat::rows(&b, k, n).t(), Mat::rows(&a, m, k).t(), &mut t, 2);
        for i in 0..m {
            for j in 0..n {
                assert!((t[j * m + i] - one[i * n + j]).abs() < 1e-3);
            }
        }
    }
}

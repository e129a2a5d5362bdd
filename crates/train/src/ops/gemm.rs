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
/// result does not depend on the thread count: `gemm` splits the output, not the sum.
pub(crate) fn matmul<T: Real>(a: Mat<T>, b: Mat<T>, dst: &mut [T]) {
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
    let threads = candle_core::utils::get_num_threads();
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

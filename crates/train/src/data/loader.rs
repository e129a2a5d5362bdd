//! A multi-threaded loader with prefetch: worker threads build batches (read from the pixel
//! cache, augment, normalise) while the model computes, and hand them over in order.
//!
//! Workers take batch indices from a shared counter and send finished batches through a bounded
//! channel (`prefetch_batches` deep); the consumer reorders them. So at most `threads +
//! prefetch_batches` batches are in flight, and the consumer sees batch `i` only after `i - 1`.
//! A batch's contents depend only on its index (each sample's random stream is derived from the
//! run seed, the epoch and its position), never on which worker built it or when.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;

use crate::train_error::TrainResult;

/// How many threads build batches and how far ahead they may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoaderOptions {
    /// Worker threads; 0 builds each batch on the calling thread when it is needed.
    pub threads: usize,
    /// Finished batches that may wait for the consumer.
    pub prefetch_batches: usize,
}

/// Builds batches `start..n` with `make` on worker threads and passes them to `consume` in
/// index order, until `consume` breaks, a batch fails, or all are done.
pub fn for_each_batch<B, M, C>(
    opts: LoaderOptions,
    start: usize,
    n: usize,
    make: M,
    mut consume: C,
) -> TrainResult<()>
where
    B: Send,
    M: Fn(usize) -> TrainResult<B> + Sync,
    C: FnMut(usize, B) -> TrainResult<ControlFlow<()>>,
{
    if opts.threads == 0 {
        for i in start..n {
            if consume(i, make(i)?)?.is_break() {
                break;
            }
        }
        return Ok(());
    }
    let next = AtomicUsize::new(start);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<(usize, TrainResult<B>)>(opts.prefetch_batches.max(1));
        for _ in 0..opts.threads {
            let tx = tx.clone();
            let (next, stop, make) = (&next, &stop, &make);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    if tx.send((i, make(i))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut pending: BTreeMap<usize, TrainResult<B>> = BTreeMap::new();
        let mut want = start;
        let result = (|| {
            while want < n {
                if let Some(batch) = pending.remove(&want) {
                    if consume(want, batch?)?.is_break() {
                        return Ok(());
                    }
                    want += 1;
                    continue;
                }
                match rx.recv() {
                    Ok((i, batch)) => {
                        pending.insert(i, batch);
                    }
                    Err(_) => break,
                }
            }
            Ok(())
        })();
        // Unblock and stop the workers: they see the flag or a closed channel.
        stop.store(true, Ordering::Relaxed);
        drop(rx);
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train_error::TrainError;

    fn collect(threads: usize, start: usize, n: usize) -> Vec<(usize, u64)> {
        let mut got = Vec::new();
        let opts = LoaderOptions {
            threads,
            prefetch_batches: 2,
        };
        for_each_batch(
            opts,
            start,
            n,
            |i| {
                // Uneven work, so that workers finish out of order.
                std::thread::sleep(std::time::Duration::from_micros((i % 3) as u64 * 300));
                Ok(i as u64 * 10)
            },
            |i, b| {
                got.push((i, b));
                Ok(ControlFlow::Continue(()))
            },
        )
        .unwrap();
        got
    }

    #[test]
    fn batches_arrive_in_order_whatever_the_threads() {
        let want: Vec<(usize, u64)> = (3..40).map(|i| (i, i as u64 * 10)).collect();
        for threads in [0, 1, 2, 5] {
            assert_eq!(collect(threads, 3, 40), want, "{threads} threads");
        }
    }

    #[test]
    fn a_break_or_an_error_stops_early() {
        let opts = LoaderOptions {
            threads: 3,
            prefetch_batches: 1,
        };
        let mut seen = 0;
        for_each_batch(opts, 0, 1000, Ok, |i, _| {
            seen += 1;
            Ok(if i == 4 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })
        .unwrap();
        assert_eq!(seen, 5);
        let err = for_each_batch(
            opts,
            0,
            1000,
            |i| {
                if i == 7 {
                    Err(TrainError::BadOption {
                        option: "x",
                        reason: "batch 7".into(),
                    })
                } else {
                    Ok(i)
                }
            },
            |_, _| Ok(ControlFlow::Continue(())),
        )
        .unwrap_err();
        assert!(err.to_string().contains("batch 7"), "{err}");
    }
}

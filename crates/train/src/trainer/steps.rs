//! The epochs: steps on batches from the loader or the caches, validation, checkpoints, and
//! the end of the run.

use super::*;
use crate::run::{DYNAMICS_JSONL, DynamicsRow};
use lennonnet_core::ContentId;

/// The inputs the steps are made of.
pub(super) enum Inputs {
    Features(Arc<FeatureSet>),
    /// The cached activations at the input of block `at`.
    Boundary {
        set: Arc<BoundarySet>,
        at: usize,
    },
    Pixels,
}

/// Validation figures.
struct Validation {
    loss: f64,
    probs: Vec<Vec<f32>>,
    confusion: Confusion,
}

/// Everything the loop needs, in one place so that the loader's consumer can borrow it.
pub(super) struct Trainer<'a> {
    pub(super) opts: &'a TrainOptions,
    pub(super) s: &'a TrainSettings,
    pub(super) reporter: &'a dyn TrainReporter,
    pub(super) model: Classifier,
    pub(super) optimizer: AdamW,
    pub(super) schedule: LrSchedule,
    pub(super) class_weights: Vec<f32>,
    pub(super) n_classes: usize,
    pub(super) device: Device,
    pub(super) pixels: Arc<PixelCache>,
    pub(super) input_px: usize,
    pub(super) norm: Normalise,
    pub(super) train: Vec<Item>,
    /// The content ids of `train`, in its order.
    pub(super) train_ids: Vec<ContentId>,
    /// Class names, in the model's output order.
    pub(super) classes: Vec<String>,
    pub(super) val: Vec<Item>,
    pub(super) inputs: Inputs,
    pub(super) run: RunDir,
    pub(super) log: MetricsLog,
    pub(super) state: ResumeState,
    pub(super) steps_per_epoch: usize,
    pub(super) started: Instant,
    pub(super) epoch_started: Instant,
}

impl Trainer<'_> {
    /// Runs the remaining epochs. False when stopped by the testing hook.
    pub(super) fn epochs(&mut self) -> TrainResult<bool> {
        while self.state.done.is_none() {
            let epoch = self.state.epoch;
            let classes: Vec<usize> = self.train.iter().map(|x| x.class).collect();
            let order = epoch_order(self.s.seed, epoch, &classes, self.n_classes, self.s.balance);
            let batches: Vec<Vec<usize>> = order
                .chunks(self.s.batch_size)
                .take(self.steps_per_epoch)
                .map(<[usize]>::to_vec)
                .collect();
            if self.state.step_in_epoch == 0 {
                self.state.sums = EpochSums::default();
            }
            self.epoch_started = Instant::now();
            self.reporter.start("train", Some(batches.len() as u64));
            self.reporter
                .advance("train", self.state.step_in_epoch as u64);
            let finished = self.run_steps(epoch, &batches)?;
            self.reporter.finish("train");
            if !finished {
                return Ok(false);
            }
            self.end_epoch(epoch)?;
        }
        Ok(true)
    }

    /// The steps of `epoch` from `state.step_in_epoch` on. False when stopped by the hook.
    fn run_steps(&mut self, epoch: usize, batches: &[Vec<usize>]) -> TrainResult<bool> {
        let start = self.state.step_in_epoch;
        let mut stopped = false;
        match &self.inputs {
            Inputs::Features(set) => {
                let set = Arc::clone(set);
                for (i, batch) in batches.iter().enumerate().skip(start) {
                    let x = self.feature_batch(&set, epoch, i, batch)?;
                    let labels: Vec<u32> =
                        batch.iter().map(|&p| self.train[p].class as u32).collect();
                    if self
                        .step(epoch, i, batches.len(), &x, batch, &labels)?
                        .is_break()
                    {
                        stopped = true;
                        break;
                    }
                }
            }
            Inputs::Boundary { set, .. } => {
                let set = Arc::clone(set);
                let n_train = self.train.len();
                for (i, batch) in batches.iter().enumerate().skip(start) {
                    let rows: Vec<u32> = batch
                        .iter()
                        .enumerate()
                        .map(|(k, &p)| {
                            (self.view_choice(set.views, epoch, i, k) * n_train + p) as u32
                        })
                        .collect();
                    let x = set.train_rows(&rows, self.model.dtype(), &self.device)?;
                    let labels: Vec<u32> =
                        batch.iter().map(|&p| self.train[p].class as u32).collect();
                    if self
                        .step(epoch, i, batches.len(), &x, batch, &labels)?
                        .is_break()
                    {
                        stopped = true;
                        break;
                    }
                }
            }
            Inputs::Pixels => {
                let (px, side) = (self.input_px, self.pixels.side());
                let seed = self.s.seed;
                let augment_opts = self.s.augment.clone();
                let norm = self.norm;
                let train = self.train.clone();
                let pixels = Arc::clone(&self.pixels);
                for_each_batch(
                    self.opts.loader,
                    start,
                    batches.len(),
                    |b| {
                        let batch = &batches[b];
                        let mut images = vec![0f32; batch.len() * 3 * px * px];
                        let mut buf = vec![0u8; pixels.image_bytes()];
                        for (k, (&p, dst)) in batch
                            .iter()
                            .zip(images.chunks_exact_mut(3 * px * px))
                            .enumerate()
                        {
                            pixels.read(train[p].slot, &mut buf)?;
                            let position = (b * batches[0].len() + k) as u64;
                            let mut r = rng::stream(seed, "augment", &[epoch as u64, position]);
                            augment(&buf, side, px, &augment_opts, &mut r, &norm, dst);
                        }
                        let labels: Vec<u32> =
                            batch.iter().map(|&p| train[p].class as u32).collect();
                        Ok((images, labels))
                    },
                    |i, (images, labels)| {
                        let x = Tensor::from_vec(images, (labels.len(), 3, px, px), &self.device)?;
                        let flow = self.step(epoch, i, batches.len(), &x, &batches[i], &labels)?;
                        stopped = flow.is_break();
                        Ok(flow)
                    },
                )?;
            }
        }
        Ok(!stopped)
    }

    /// The features of a training batch, each image's view drawn from its position.
    fn feature_batch(
        &self,
        set: &FeatureSet,
        epoch: usize,
        batch_index: usize,
        batch: &[usize],
    ) -> TrainResult<Tensor> {
        let views = set.train.len();
        let mut rows = Vec::with_capacity(batch.len() * set.dim);
        for (k, &p) in batch.iter().enumerate() {
            let view = self.view_choice(views, epoch, batch_index, k);
            rows.extend_from_slice(&set.train[view][p * set.dim..(p + 1) * set.dim]);
        }
        Ok(
            Tensor::from_vec(rows, (batch.len(), set.dim), &self.device)?
                .to_dtype(self.model.dtype())?,
        )
    }

    /// The cached view that image `k` of batch `batch_index` of `epoch` trains on.
    fn view_choice(&self, views: usize, epoch: usize, batch_index: usize, k: usize) -> usize {
        if views > 1 {
            let position = (batch_index * self.s.batch_size + k) as u64;
            let mut r = rng::stream(self.s.seed, "view-choice", &[epoch as u64, position]);
            rng::below(&mut r, views as u64) as usize
        } else {
            0
        }
    }

    /// One optimiser step on a batch; breaks when the testing hook says so.
    fn step(
        &mut self,
        epoch: usize,
        index: usize,
        epoch_steps: usize,
        x: &Tensor,
        positions: &[usize],
        labels: &[u32],
    ) -> TrainResult<ControlFlow<()>> {
        let step_started = Instant::now();
        let step = self.state.global_step;
        let lr = self.schedule.at(step);
        self.model
            .set_rng_seed(rng::seed(self.s.seed, "dropout", &[step]));
        let logits = match self.inputs {
            Inputs::Features(_) => self.model.head_t(x, true)?,
            Inputs::Boundary { at, .. } => self.model.forward_from_t(x, at, true)?,
            Inputs::Pixels => self.model.forward_t(x, true)?,
        };
        let loss = cross_entropy(&logits, labels, &self.class_weights, self.s.label_smoothing)?;
        let mut grads = loss.backward()?;
        let grad_norm = self
            .optimizer
            .clip_grad_norm(&mut grads, self.s.grad_clip_norm)?;
        self.optimizer.step(&grads, lr)?;
        let loss = loss.to_scalar::<f32>()? as f64;
        // One copy of the logits to the host serves the accuracy and the training dynamics
        // (the softmax keeps the argmax).
        let rows: Vec<Vec<f32>> = logits
            .to_dtype(DType::F32)?
            .to_device(&Device::Cpu)?
            .to_vec2()?;
        self.record_margins(&rows, positions, labels);
        let correct = rows
            .iter()
            .zip(labels)
            .filter(|(r, y)| argmax(r) == **y as usize)
            .count() as u64;
        let n = labels.len() as u64;
        self.state.global_step += 1;
        self.state.step_in_epoch = index + 1;
        let sums = &mut self.state.sums;
        sums.loss += loss * n as f64;
        sums.correct += correct;
        sums.images += n;
        sums.steps += 1;
        let secs = step_started.elapsed().as_secs_f64();
        let record = StepRecord {
            epoch,
            step: self.state.global_step,
            epoch_step: index + 1,
            epoch_steps,
            loss,
            accuracy: correct as f64 / n as f64,
            lr,
            grad_norm,
            time: Timing {
                elapsed_secs: self.started.elapsed().as_secs_f64(),
                secs,
                images_per_sec: n as f64 / secs.max(1e-9),
            },
        };
        self.log.append(&MetricsRecord::Step(record.clone()))?;
        self.reporter.step(&record);
        self.reporter.advance("train", 1);
        let every = self.opts.checkpoint_every_steps;
        if every > 0 && self.state.global_step % every == 0 && index + 1 < epoch_steps {
            self.checkpoint()?;
        }
        if self.opts.stop_after_steps == Some(self.state.global_step) {
            return Ok(ControlFlow::Break(()));
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Adds each image's margin (logit of its label − the largest other logit) to the training
    /// dynamics.
    fn record_margins(&mut self, logits: &[Vec<f32>], positions: &[usize], labels: &[u32]) {
        let state = &mut self.state;
        for ((row, &p), &y) in logits.iter().zip(positions).zip(labels) {
            let own = row[y as usize];
            let other = row
                .iter()
                .enumerate()
                .filter(|&(c, _)| c != y as usize)
                .map(|(_, &v)| v)
                .fold(f32::NEG_INFINITY, f32::max);
            let sum = f64::from_bits(state.margin_sums[p]) + f64::from(own - other);
            state.margin_sums[p] = sum.to_bits();
            state.margin_counts[p] += 1;
        }
    }

    /// `dynamics.jsonl`: the mean margin of each training image, sorted by id.
    fn write_dynamics(&self) -> TrainResult<()> {
        let mut rows: Vec<DynamicsRow> = (0..self.train.len())
            .map(|p| {
                let seen = self.state.margin_counts.get(p).copied().unwrap_or(0);
                let sum = self
                    .state
                    .margin_sums
                    .get(p)
                    .map_or(0.0, |&b| f64::from_bits(b));
                DynamicsRow {
                    id: self.train_ids[p].to_string(),
                    label: self.classes[self.train[p].class].clone(),
                    margin: if seen > 0 {
                        (sum / f64::from(seen)) as f32
                    } else {
                        0.0
                    },
                    seen,
                }
            })
            .collect();
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        let mut out = Vec::new();
        for r in &rows {
            serde_json::to_writer(&mut out, r).expect("a dynamics row serialises");
            out.push(b'\n');
        }
        crate::run::write_atomic(&self.run.path(DYNAMICS_JSONL), &out)
    }

    /// Writes last.safetensors and the resume checkpoint at the current position.
    fn checkpoint(&mut self) -> TrainResult<()> {
        self.state.metrics_bytes = self.log.sync()?;
        self.model.save_safetensors(&self.run.path(LAST))?;
        let mut tensors: Vec<(String, Tensor)> = self.model.store().tensors().into_iter().collect();
        tensors.extend(self.optimizer.state_tensors());
        self.run.write_resume(&tensors, &self.state)
    }

    /// Validation, best checkpoint, epoch record, early stopping, checkpoint.
    fn end_epoch(&mut self, epoch: usize) -> TrainResult<()> {
        let train_secs = self.epoch_started.elapsed().as_secs_f64();
        let v = self.validate()?;
        let improved = self.state.best.is_none_or(|b| v.loss < b.val_loss);
        if improved {
            self.state.best = Some(Best {
                epoch,
                val_loss: v.loss,
            });
            self.state.epochs_since_best = 0;
            self.model.save_safetensors(&self.run.path(BEST))?;
        } else {
            self.state.epochs_since_best += 1;
        }
        let sums = self.state.sums;
        let last_lr = self.schedule.at(self.state.global_step.saturating_sub(1));
        let record = EpochRecord {
            epoch,
            steps: sums.steps,
            lr: last_lr,
            train_loss: sums.loss / sums.images.max(1) as f64,
            train_accuracy: sums.correct as f64 / sums.images.max(1) as f64,
            val_loss: v.loss,
            val_accuracy: v.confusion.accuracy(),
            val_balanced_accuracy: v.confusion.balanced_accuracy(),
            best: improved,
            time: Timing {
                elapsed_secs: self.started.elapsed().as_secs_f64(),
                secs: self.epoch_started.elapsed().as_secs_f64(),
                images_per_sec: sums.images as f64 / train_secs.max(1e-9),
            },
        };
        self.log.append(&MetricsRecord::Epoch(record.clone()))?;
        self.reporter.epoch(&record);
        tracing::debug!(
            epoch,
            train_loss = format!("{:.4}", record.train_loss),
            val_loss = format!("{:.4}", record.val_loss),
            val_accuracy = format!("{:.4}", record.val_accuracy),
            best = improved,
            "epoch done"
        );
        if epoch >= self.s.epochs {
            self.state.done = Some(StopReason::Epochs);
        } else if self.state.epochs_since_best >= self.s.patience_epochs {
            tracing::info!(
                epoch,
                patience = self.s.patience_epochs,
                "early stopping: the validation loss stopped improving"
            );
            self.state.done = Some(StopReason::EarlyStopping);
        }
        self.state.epoch = epoch + 1;
        self.state.step_in_epoch = 0;
        self.state.sums = EpochSums::default();
        self.checkpoint()
    }

    /// Loss, probabilities and confusion of the model on the val split.
    fn validate(&self) -> TrainResult<Validation> {
        let logits = match &self.inputs {
            Inputs::Features(set) => {
                let x = Tensor::from_slice(&set.val, (self.val.len(), set.dim), &self.device)?
                    .to_dtype(self.model.dtype())?;
                self.model.head_t(&x, false)?.to_dtype(DType::F32)?
            }
            Inputs::Boundary { set, at } => {
                let batch = self.s.batch_size;
                let n = self.val.len();
                let mut parts = Vec::with_capacity(n.div_ceil(batch));
                for start in (0..n).step_by(batch) {
                    let end = (start + batch).min(n);
                    let x = set.val_rows(start, end, self.model.dtype(), &self.device)?;
                    parts.push(
                        self.model
                            .forward_from_t(&x, *at, false)?
                            .to_dtype(DType::F32)?,
                    );
                }
                Tensor::cat(&parts, 0)?
            }
            Inputs::Pixels => {
                let (px, side) = (self.input_px, self.pixels.side());
                let batch = self.s.batch_size;
                let n_batches = self.val.len().div_ceil(batch);
                let mut parts = Vec::with_capacity(n_batches);
                self.reporter.start("val", Some(self.val.len() as u64));
                for_each_batch(
                    self.opts.loader,
                    0,
                    n_batches,
                    |b| {
                        let items = &self.val[b * batch..((b + 1) * batch).min(self.val.len())];
                        let mut images = vec![0f32; items.len() * 3 * px * px];
                        let mut buf = vec![0u8; self.pixels.image_bytes()];
                        for (x, dst) in items.iter().zip(images.chunks_exact_mut(3 * px * px)) {
                            self.pixels.read(x.slot, &mut buf)?;
                            centre_crop(&buf, side, px, &self.norm, dst);
                        }
                        Ok((items.len(), images))
                    },
                    |_, (n, images)| {
                        let x = Tensor::from_vec(images, (n, 3, px, px), &self.device)?;
                        parts.push(self.model.forward_t(&x, false)?.to_dtype(DType::F32)?);
                        self.reporter.advance("val", n as u64);
                        Ok(ControlFlow::Continue(()))
                    },
                )?;
                self.reporter.finish("val");
                Tensor::cat(&parts, 0)?
            }
        };
        let labels: Vec<u32> = self.val.iter().map(|x| x.class as u32).collect();
        let loss = cross_entropy(
            &logits,
            &labels,
            &self.class_weights,
            self.s.label_smoothing,
        )?
        .to_scalar::<f32>()? as f64;
        let probs = probabilities(&logits)?;
        let mut confusion = Confusion::new(self.n_classes);
        for (p, &y) in probs.iter().zip(&labels) {
            confusion.add(y as usize, argmax(p));
        }
        Ok(Validation {
            loss,
            probs,
            confusion,
        })
    }

    /// Reloads the best model, tunes the threshold, writes the end record and run.json.
    pub(super) fn finish(&mut self, mut record: RunRecord) -> TrainResult<RunRecord> {
        let best = self.state.best.expect("at least one epoch ran");
        let stop_reason = self.state.done.expect("the epochs are over");
        self.model
            .load_weights(&self.run.path(BEST), HeadPolicy::Require)?;
        let v = self.validate()?;
        let val_at_threshold: Option<BinaryScores> = (self.n_classes == 2).then(|| {
            let p_pos: Vec<f32> = v.probs.iter().map(|p| p[0]).collect();
            let is_pos: Vec<bool> = self.val.iter().map(|x| x.class == 0).collect();
            tune_threshold(&p_pos, &is_pos, self.s.threshold_metric)
        });
        let result = RunResult {
            stop_reason,
            epochs_run: self.state.epoch - 1,
            best_epoch: best.epoch,
            best_val_loss: best.val_loss,
            val_accuracy: v.confusion.accuracy(),
            threshold_metric: self.s.threshold_metric,
            val_at_threshold,
        };
        self.log.append(&MetricsRecord::End(EndRecord {
            result: result.clone(),
            time: Timing {
                elapsed_secs: self.started.elapsed().as_secs_f64(),
                ..Default::default()
            },
        }))?;
        self.log.sync()?;
        self.write_dynamics()?;
        record.threshold = val_at_threshold.map(|s| s.threshold);
        record.result = Some(result);
        record.status = RunStatus::Finished;
        self.run.write_record(&record)?;
        Ok(record)
    }
}

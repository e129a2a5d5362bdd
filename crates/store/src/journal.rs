//! The journal: append-only JSON Lines in `journal/<8 digits>.jsonl` segments, the store's
//! source of truth.
//!
//! Writes go through one writer thread that does group commit: callers queue records and get
//! an [`Ack`]; the thread writes every queued record, fsyncs the object folders the batch
//! depends on, fsyncs the segment, applies the batch to the index, and only then resolves the
//! batch's acks. A record is acknowledged only once durable.
//!
//! A crash can leave a torn last line (or, with delayed allocation, a run of NUL bytes). Reading
//! ignores an unparsable last line of a segment and lines of NUL bytes, with a warning; opening
//! for writing truncates the last segment after its last good line. Any other unreadable line is
//! an error: the journal is the source of truth and is never silently skipped.

use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use serde::Deserialize;

use crate::error::{Result, StoreError};
use crate::objects::{Staged, commit_staged, sync_dir};
use crate::record::{RECORD_VERSION, Record};

/// A new segment is started once the current one is this large.
pub const SEGMENT_MAX_BYTES: u64 = 128 << 20;

/// Where a record starts: segment number and byte offset. Orders records in journal order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    pub segment: u32,
    pub offset: u64,
}

impl Position {
    /// 12 big-endian bytes, so that byte order is journal order.
    pub fn to_bytes(self) -> [u8; 12] {
        let mut b = [0; 12];
        b[..4].copy_from_slice(&self.segment.to_be_bytes());
        b[4..].copy_from_slice(&self.offset.to_be_bytes());
        b
    }

    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let b: &[u8; 12] = b.try_into().ok()?;
        Some(Self {
            segment: u32::from_be_bytes(b[..4].try_into().ok()?),
            offset: u64::from_be_bytes(b[4..].try_into().ok()?),
        })
    }
}

pub fn segment_path(dir: &Path, segment: u32) -> PathBuf {
    dir.join(format!("{segment:08}.jsonl"))
}

/// The segment numbers in `dir`, ascending.
pub fn segments(dir: &Path) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(StoreError::io("cannot list", dir))? {
        let entry = entry.map_err(StoreError::io("cannot list", dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_suffix(".jsonl")
            .and_then(|s| s.parse::<u32>().ok())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

#[derive(Deserialize)]
struct Peek {
    #[serde(rename = "type")]
    kind: String,
    v: u32,
}

/// Parses one line. `Ok(None)` for a line that is not a record (unparsable).
fn parse_line(line: &[u8], path: &Path, line_no: u64) -> Result<Result<Record, String>> {
    match serde_json::from_slice::<Record>(line) {
        Ok(r) if r.version() == RECORD_VERSION => Ok(Ok(r)),
        Ok(r) => Err(StoreError::RecordVersion {
            path: path.to_path_buf(),
            line: line_no,
            kind: r.kind().to_string(),
            found: r.version(),
            expected: RECORD_VERSION,
        }),
        Err(e) => {
            if let Ok(p) = serde_json::from_slice::<Peek>(line) {
                if p.v > RECORD_VERSION {
                    return Err(StoreError::RecordVersion {
                        path: path.to_path_buf(),
                        line: line_no,
                        kind: p.kind,
                        found: p.v,
                        expected: RECORD_VERSION,
                    });
                }
            }
            Ok(Err(e.to_string()))
        }
    }
}

/// Reads one segment from `from_offset`, calling `f` on each record in order. Returns the
/// offset just after the last good line (where an append may safely continue).
pub fn read_segment(
    dir: &Path,
    segment: u32,
    from_offset: u64,
    f: &mut dyn FnMut(Position, Record) -> Result<()>,
) -> Result<u64> {
    let path = segment_path(dir, segment);
    let file = File::open(&path).map_err(StoreError::io("cannot open", &path))?;
    let mut r = BufReader::with_capacity(1 << 20, file);
    if from_offset > 0 {
        use std::io::Seek;
        r.seek(std::io::SeekFrom::Start(from_offset))
            .map_err(StoreError::io("cannot seek", &path))?;
    }
    let mut offset = from_offset;
    let mut good_end = from_offset;
    let mut line_no = 0u64;
    let mut buf = Vec::with_capacity(4096);
    // A line that failed to parse, kept until we know whether anything follows it.
    let mut pending_bad: Option<(u64, String)> = None;
    loop {
        buf.clear();
        let n = r
            .read_until(b'\n', &mut buf)
            .map_err(StoreError::io("cannot read", &path))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let start = offset;
        offset += n as u64;
        let complete = buf.last() == Some(&b'\n');
        let body = trim(&buf);
        if body.is_empty() {
            if complete {
                good_end = offset;
            }
            continue;
        }
        if body.contains(&0) {
            tracing::warn!(path = %path.display(), line = line_no, "skipping a journal line of NUL bytes (left by a crash)");
            continue;
        }
        if let Some((bad_line, message)) = pending_bad.take() {
            return Err(StoreError::JournalCorrupt {
                path,
                line: bad_line,
                message,
            });
        }
        match parse_line(body, &path, line_no)? {
            Ok(record) if complete => {
                f(
                    Position {
                        segment,
                        offset: start,
                    },
                    record,
                )?;
                good_end = offset;
            }
            // A parsable but unterminated last line was cut before its newline: not durable.
            Ok(_) => pending_bad = Some((line_no, "line has no newline".into())),
            Err(message) => pending_bad = Some((line_no, message)),
        }
    }
    if let Some((line, message)) = pending_bad {
        tracing::warn!(path = %path.display(), line, %message, "ignoring a torn last journal line (left by a crash)");
    }
    Ok(good_end)
}

fn trim(b: &[u8]) -> &[u8] {
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &b[..end]
}

/// A journal line that `store repair` moved out of its segment into the quarantine folder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuarantinedLine {
    /// The segment file it was in, and its 1-based line number and byte offset there.
    pub segment: PathBuf,
    pub line: u64,
    pub offset: u64,
    pub bytes: u64,
    /// Why it could not be read.
    pub error: String,
    /// The file that now holds its bytes, exactly as they were.
    pub saved_as: PathBuf,
}

/// Moves every unreadable line out of the journal's segments (`store repair`): each is saved
/// byte for byte in `quarantine_dir` (`<segment>-line<N>.bad`) and described in
/// `quarantine_dir/report.jsonl`, then its segment is rewritten without it (temp file, fsync,
/// rename, fsync of the folder). Lines of NUL bytes and a torn last line of the last segment are
/// left to the usual crash handling. A record of a newer version is not damage: it stays, and
/// the error is returned. Journal positions change, so the index must be rebuilt afterwards.
pub fn quarantine_bad_lines(dir: &Path, quarantine_dir: &Path) -> Result<Vec<QuarantinedLine>> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    let segs = segments(dir)?;
    for (k, &seg) in segs.iter().enumerate() {
        let last_segment = k + 1 == segs.len();
        let path = segment_path(dir, seg);
        let data = fs::read(&path).map_err(StoreError::io("cannot read", &path))?;
        let lines: Vec<&[u8]> = data.split_inclusive(|&b| b == b'\n').collect();
        let mut keep = Vec::with_capacity(data.len());
        let mut bad = Vec::new();
        let mut offset = 0u64;
        for (i, raw) in lines.iter().enumerate() {
            let line_no = i as u64 + 1;
            let body = trim(raw);
            let is_last = i + 1 == lines.len();
            let readable = body.is_empty()
                || body.contains(&0)
                || (parse_line(body, &path, line_no)?.is_ok() && raw.ends_with(b"\n"));
            if readable || (last_segment && is_last) {
                keep.extend_from_slice(raw);
            } else {
                let error = match parse_line(body, &path, line_no)? {
                    Ok(_) => "the line has no newline".to_string(),
                    Err(e) => e,
                };
                bad.push((line_no, offset, raw.to_vec(), error));
            }
            offset += raw.len() as u64;
        }
        if bad.is_empty() {
            continue;
        }
        fs::create_dir_all(quarantine_dir)
            .map_err(StoreError::io("cannot create", quarantine_dir))?;
        let mut report = String::new();
        for (line, offset, bytes, error) in bad {
            let saved_as = quarantine_dir.join(format!("{seg:08}-line{line}.bad"));
            write_synced(&saved_as, &bytes)?;
            let q = QuarantinedLine {
                segment: path.clone(),
                line,
                offset,
                bytes: bytes.len() as u64,
                error,
                saved_as,
            };
            tracing::warn!(path = %path.display(), line, error = %q.error, saved_as = %q.saved_as.display(), "journal line quarantined");
            report += &serde_json::to_string(&q).expect("serialises");
            report.push('\n');
            out.push(q);
        }
        let report_path = quarantine_dir.join("report.jsonl");
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&report_path)
            .map_err(StoreError::io("cannot open", &report_path))?;
        f.write_all(report.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(StoreError::io("cannot write", &report_path))?;
        sync_dir(quarantine_dir)?;
        let tmp = dir.join(format!(".{seg:08}.jsonl.repair.tmp"));
        write_synced(&tmp, &keep)?;
        fs::rename(&tmp, &path).map_err(StoreError::io("cannot rename into place", &path))?;
        sync_dir(dir)?;
    }
    Ok(out)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(StoreError::io("cannot create", path))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(StoreError::io("cannot write", path))
}

/// Reads every record from `from` on, in journal order.
pub fn read_all(
    dir: &Path,
    from: Position,
    f: &mut dyn FnMut(Position, Record) -> Result<()>,
) -> Result<Position> {
    let mut end = from;
    for seg in segments(dir)? {
        if seg < from.segment {
            continue;
        }
        let start = if seg == from.segment { from.offset } else { 0 };
        let good = read_segment(dir, seg, start, f)?;
        end = Position {
            segment: seg,
            offset: good,
        };
    }
    Ok(end)
}

/// Applies a durable batch to the index, in journal order.
pub type Apply = Box<dyn FnMut(&[(Position, Record)]) -> Result<()> + Send>;

/// One queued batch of records.
struct Pending {
    seq: u64,
    records: Vec<Record>,
    lines: Vec<u8>,
    line_lens: Vec<usize>,
    staged: Vec<Staged>,
}

#[derive(Default)]
struct State {
    queue: Vec<Pending>,
    next_seq: u64,
    /// Every batch with `seq <= done` has been handled (durable, or failed when poisoned).
    done: u64,
    /// The first seq that failed and why: it and every later batch fail.
    poisoned: Option<(u64, String)>,
    shutdown: bool,
    /// The end of the last durable record.
    end: Position,
    /// The writer thread has stopped: batches not yet handled never will be.
    exited: bool,
    /// Opened read-only: there is no writer, every append fails.
    read_only: bool,
    wakers: Vec<(u64, Waker)>,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    durable: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The journal's writer: a handle to the group-commit thread.
pub struct Journal {
    dir: PathBuf,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("dir", &self.dir).finish()
    }
}

/// Resolves once a batch of records is durable (and indexed), or failed. Use [`Ack::wait`] in
/// blocking code, or `.await` it.
#[must_use = "a record is only acknowledged once its Ack resolves"]
pub struct Ack {
    shared: Arc<Shared>,
    seq: u64,
}

impl Ack {
    fn result(&self, st: &State) -> Option<Result<()>> {
        if st.read_only {
            return Some(Err(StoreError::ReadOnly));
        }
        if st.done < self.seq {
            return st.exited.then_some(Err(StoreError::JournalClosed));
        }
        match &st.poisoned {
            Some((first, message)) if self.seq >= *first => {
                Some(Err(StoreError::JournalPoisoned {
                    message: message.clone(),
                }))
            }
            _ => Some(Ok(())),
        }
    }

    /// Blocks until the records are durable.
    pub fn wait(self) -> Result<()> {
        let mut st = self.shared.lock();
        loop {
            if let Some(r) = self.result(&st) {
                return r;
            }
            st = self
                .shared
                .durable
                .wait(st)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Future for Ack {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = self.shared.lock();
        if let Some(r) = self.result(&st) {
            return Poll::Ready(r);
        }
        // One waker per ack: a re-poll replaces the previous one.
        let seq = self.seq;
        st.wakers.retain(|(s, _)| *s != seq);
        st.wakers.push((seq, cx.waker().clone()));
        Poll::Pending
    }
}

impl Journal {
    /// Opens the journal in `dir` for appending at `end`, the position [`repair`] returned, and
    /// starts the writer thread, which calls `apply` on each durable batch.
    pub fn open(dir: &Path, end: Position, apply: Apply) -> Result<Self> {
        let (segment, size) = (end.segment.max(1), end.offset);
        let writer = Writer::open(dir, segment, size)?;
        Self::start(dir, writer, apply)
    }

    /// A journal with no writer, for a store opened read-only: every append fails with
    /// [`StoreError::ReadOnly`].
    pub fn read_only(dir: &Path, end: Position) -> Self {
        Self {
            dir: dir.to_path_buf(),
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    next_seq: 1,
                    end,
                    exited: true,
                    read_only: true,
                    ..State::default()
                }),
                work: Condvar::new(),
                durable: Condvar::new(),
            }),
            thread: Mutex::new(None),
        }
    }

    fn start(dir: &Path, writer: Writer, apply: Apply) -> Result<Self> {
        let (segment, size) = (writer.segment, writer.size);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                next_seq: 1,
                end: Position {
                    segment,
                    offset: size,
                },
                ..State::default()
            }),
            work: Condvar::new(),
            durable: Condvar::new(),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("journal-writer".into())
                .spawn(move || writer_loop(shared, writer, apply))
                .map_err(StoreError::io("cannot start the journal writer for", dir))?
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }
}

/// Creates the journal folder if needed and truncates a torn tail of its last segment.
/// Returns the end of the last good record (segment 0 when there is no segment yet).
pub fn repair(dir: &Path) -> Result<Position> {
    {
        fs::create_dir_all(dir).map_err(StoreError::io("cannot create", dir))?;
        let segs = segments(dir)?;
        let (segment, size) = match segs.last() {
            None => (0, 0),
            Some(&last) => {
                let good = read_segment(dir, last, 0, &mut |_, _| Ok(()))?;
                let path = segment_path(dir, last);
                let len = fs::metadata(&path)
                    .map_err(StoreError::io("cannot stat", &path))?
                    .len();
                if len != good {
                    tracing::warn!(path = %path.display(), from = len, to = good, "truncating a torn journal tail");
                    let f = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(StoreError::io("cannot open", &path))?;
                    f.set_len(good)
                        .and_then(|()| f.sync_all())
                        .map_err(StoreError::io("cannot truncate", &path))?;
                }
                (last, good)
            }
        };
        Ok(Position {
            segment,
            offset: size,
        })
    }
}

impl Journal {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Queues `records` as one batch; `staged` are the new objects they name, made durable
    /// and put in place before the records become durable. The returned [`Ack`] resolves when
    /// they are.
    pub fn append(&self, records: Vec<Record>, staged: Vec<Staged>) -> Ack {
        let mut lines = Vec::with_capacity(records.len() * 256);
        let mut line_lens = Vec::with_capacity(records.len());
        for r in &records {
            let before = lines.len();
            serde_json::to_writer(&mut lines, r).expect("records always serialise");
            lines.push(b'\n');
            line_lens.push(lines.len() - before);
        }
        let mut st = self.shared.lock();
        let seq = st.next_seq;
        st.next_seq += 1;
        st.queue.push(Pending {
            seq,
            records,
            lines,
            line_lens,
            staged,
        });
        drop(st);
        self.shared.work.notify_one();
        Ack {
            shared: self.shared.clone(),
            seq,
        }
    }

    /// Waits for everything queued, then stops the writer thread. Later appends fail.
    pub fn close(&self) {
        self.shared.lock().shutdown = true;
        self.shared.work.notify_all();
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    /// The end of the last durable record.
    pub fn end(&self) -> Position {
        self.shared.lock().end
    }

    /// Whether a write failed since open (the store then needs reopening).
    pub fn poisoned(&self) -> Option<String> {
        self.shared.lock().poisoned.as_ref().map(|(_, m)| m.clone())
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}

struct Writer {
    dir: PathBuf,
    segment: u32,
    size: u64,
    file: File,
}

impl Writer {
    fn open(dir: &Path, segment: u32, size: u64) -> Result<Self> {
        let path = segment_path(dir, segment);
        let existed = path.exists();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(StoreError::io("cannot open", &path))?;
        if !existed {
            sync_dir(dir)?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            segment,
            size,
            file,
        })
    }

    /// Writes a batch and makes it durable. Returns each record's position.
    fn write(&mut self, batch: &[Pending]) -> Result<Vec<Position>> {
        if self.size >= SEGMENT_MAX_BYTES {
            *self = Writer::open(&self.dir, self.segment + 1, 0)?;
        }
        let path = segment_path(&self.dir, self.segment);
        let staged: Vec<Staged> = batch
            .iter()
            .flat_map(|p| p.staged.iter().cloned())
            .collect();
        commit_staged(&staged)?;
        let mut positions = Vec::new();
        let mut all = Vec::with_capacity(batch.iter().map(|p| p.lines.len()).sum());
        let mut offset = self.size;
        for p in batch {
            for len in &p.line_lens {
                positions.push(Position {
                    segment: self.segment,
                    offset,
                });
                offset += *len as u64;
            }
            all.extend_from_slice(&p.lines);
        }
        self.file
            .write_all(&all)
            .map_err(StoreError::io("cannot append to", &path))?;
        self.file
            .sync_data()
            .map_err(StoreError::io("cannot fsync", &path))?;
        self.size = offset;
        Ok(positions)
    }
}

fn writer_loop(shared: Arc<Shared>, mut writer: Writer, mut apply: Apply) {
    loop {
        let batch = {
            let mut st = shared.lock();
            while st.queue.is_empty() && !st.shutdown {
                st = shared.work.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.queue.is_empty() {
                break;
            }
            std::mem::take(&mut st.queue)
        };
        let last = batch.last().map_or(0, |p| p.seq);
        let poisoned = shared.lock().poisoned.is_some();
        let failure = if poisoned {
            None
        } else {
            match writer.write(&batch) {
                Ok(positions) => {
                    let records: Vec<(Position, Record)> = positions
                        .into_iter()
                        .zip(batch.into_iter().flat_map(|p| p.records))
                        .collect();
                    match apply(&records) {
                        Ok(()) => None,
                        Err(e) => Some(format!(
                            "indexing failed after the records were durable: {e}"
                        )),
                    }
                }
                Err(e) => Some(error_chain(&e)),
            }
        };
        let mut st = shared.lock();
        if let Some(message) = failure {
            tracing::error!(%message, "journal write failed; no further records are accepted");
            let first = st.done + 1;
            st.poisoned.get_or_insert((first, message));
        }
        st.done = last;
        st.end = Position {
            segment: writer.segment,
            offset: writer.size,
        };
        let wakers: Vec<Waker> = {
            let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut st.wakers)
                .into_iter()
                .partition(|(s, _)| *s <= last);
            st.wakers = waiting;
            ready.into_iter().map(|(_, w)| w).collect()
        };
        drop(st);
        shared.durable.notify_all();
        for w in wakers {
            w.wake();
        }
    }
    // Wake anyone left waiting (their batches can no longer be written).
    let wakers = {
        let mut st = shared.lock();
        st.exited = true;
        std::mem::take(&mut st.wakers)
    };
    shared.durable.notify_all();
    for (_, w) in wakers {
        w.wake();
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s += ": ";
        s += &c.to_string();
        cur = c.source();
    }
    s
}

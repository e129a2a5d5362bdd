//! PyTorch checkpoints (`torch.save` of a state dict), in both formats:
//!
//! - **zip** (PyTorch ≥ 1.6): a zip archive with `<name>/data.pkl` (the pickled object, whose
//!   tensors refer to storages by persistent id) and one entry `<name>/data/<key>` per storage.
//! - **legacy** (before 1.6): five things back to back: a pickled magic number
//!   (0x1950a86a20f9469cfc6c), the protocol version (1001), a dict of system info (byte order,
//!   type sizes), the pickled object, the pickled list of storage keys; then, for each key in that
//!   order, the storage's element count (8 bytes, little-endian) and its raw bytes.
//!
//! In both, a tensor is `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` with
//! `storage` the persistent id `('storage', torch.FloatStorage, key, location, numel[, view])`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::pickle::{self, Value};
use crate::error::{Error, Result};

/// The legacy format's magic number, as the little-endian bytes of its pickled long.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const LEGACY_PROTOCOL: i64 = 1001;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorchFormat {
    Zip,
    Legacy,
}

impl TorchFormat {
    pub fn name(self) -> &'static str {
        match self {
            Self::Zip => "zip (PyTorch >= 1.6)",
            Self::Legacy => "legacy (PyTorch < 1.6)",
        }
    }
}

/// The tensors of a checkpoint, in file order.
#[derive(Debug)]
pub struct TorchCheckpoint {
    pub format: TorchFormat,
    pub tensors: Vec<(String, Tensor)>,
    /// State-dict entries that are not tensors (left out).
    pub skipped: Vec<String>,
    /// The key of the wrapping dict the state dict was found under, if any.
    pub key: Option<String>,
}

/// Reads either format, told apart by the first bytes. `key` selects the state dict inside a
/// wrapping dict (`state_dict`, `model`, ...); without it the usual keys are tried.
pub fn read(path: &Path, key: Option<&str>) -> Result<TorchCheckpoint> {
    let mut head = [0u8; 4];
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let n = f.read(&mut head).map_err(|e| Error::io(path, e))?;
    match &head[..n] {
        [b'P', b'K', 3, 4] => read_zip(path, key),
        [0x80, 2..=5, ..] => read_legacy(path, key),
        _ => Err(Error::NotACheckpoint {
            path: path.into(),
            reason: "neither a zip archive nor a pickle (a tar file from PyTorch < 0.4 is not supported)".into(),
        }),
    }
}

/// The storage a persistent id names.
#[derive(Debug, Clone, PartialEq)]
struct StorageId {
    key: String,
    dtype: TorchDType,
    numel: usize,
    /// Legacy views: (view key, element offset into the root storage, view size).
    view: Option<(String, usize, usize)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TorchDType {
    Candle(DType),
    /// Stored as u8 (0/1).
    Bool,
    /// torch.int8, widened to i16.
    I8,
}

impl TorchDType {
    fn of_storage(class: &str) -> Option<Self> {
        Some(match class {
            "FloatStorage" => Self::Candle(DType::F32),
            "DoubleStorage" => Self::Candle(DType::F64),
            "HalfStorage" => Self::Candle(DType::F16),
            "BFloat16Storage" => Self::Candle(DType::BF16),
            "LongStorage" => Self::Candle(DType::I64),
            "IntStorage" => Self::Candle(DType::I32),
            "ShortStorage" => Self::Candle(DType::I16),
            "ByteStorage" => Self::Candle(DType::U8),
            "CharStorage" => Self::I8,
            "BoolStorage" => Self::Bool,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Self::Candle(d) => d.size_in_bytes(),
            Self::Bool | Self::I8 => 1,
        }
    }
}

/// A tensor before its data is read.
#[derive(Debug, Clone)]
struct TensorRef {
    storage: StorageId,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.into(),
        reason: reason.into(),
    }
}

fn usizes(v: &Value) -> Option<Vec<usize>> {
    v.as_seq()?
        .iter()
        .map(|x| x.as_int().and_then(|i| usize::try_from(i).ok()))
        .collect()
}

fn storage_id(pid: &Value) -> std::result::Result<StorageId, String> {
    let items = pid.as_seq().ok_or("persistent id is not a tuple")?;
    match items {
        [
            tag,
            Value::Global { name, .. },
            key,
            _location,
            numel,
            rest @ ..,
        ] if tag.as_str() == Some("storage") => {
            let dtype = TorchDType::of_storage(name)
                .ok_or_else(|| format!("unsupported storage type {name}"))?;
            let key = key
                .as_str()
                .ok_or("storage key is not a string")?
                .to_string();
            let numel = numel
                .as_int()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or("bad storage size")?;
            let view = match rest.first() {
                None | Some(Value::None) => None,
                Some(v) => match v.as_seq() {
                    Some([vk, off, size]) => Some((
                        vk.as_str().ok_or("bad view key")?.to_string(),
                        off.as_int()
                            .and_then(|n| usize::try_from(n).ok())
                            .ok_or("bad view offset")?,
                        size.as_int()
                            .and_then(|n| usize::try_from(n).ok())
                            .ok_or("bad view size")?,
                    )),
                    _ => return Err("bad storage view metadata".into()),
                },
            };
            Ok(StorageId {
                key,
                dtype,
                numel,
                view,
            })
        }
        _ => Err(format!("unexpected persistent id {pid:?}")),
    }
}

/// Recognises the ways PyTorch pickles a tensor; `None` for anything else.
fn tensor_ref(v: &Value) -> std::result::Result<Option<TensorRef>, String> {
    let Value::Call { func, args } = v else {
        return Ok(None);
    };
    let Value::Global { module, name } = func.as_ref() else {
        return Ok(None);
    };
    let args = args.as_seq().unwrap_or(&[]);
    match (module.as_str(), name.as_str()) {
        ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => {
            let [storage, offset, size, stride, ..] = args else {
                return Err(format!("{name} with {} arguments", args.len()));
            };
            let Value::Persistent(pid) = storage else {
                return Err(format!("{name}: storage is not a persistent id"));
            };
            Ok(Some(TensorRef {
                storage: storage_id(pid)?,
                offset: offset
                    .as_int()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or("bad storage offset")?,
                shape: usizes(size).ok_or("bad tensor size")?,
                stride: usizes(stride).ok_or("bad tensor stride")?,
            }))
        }
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
            match args.first() {
                Some(data) => tensor_ref(data),
                None => Err(format!("{name} without data")),
            }
        }
        ("torch._tensor", "_rebuild_from_type_v2") => match args {
            [f, _type, inner, ..] => tensor_ref(&Value::Call {
                func: Box::new(f.clone()),
                args: Box::new(inner.clone()),
            }),
            _ => Err(format!("{name} with {} arguments", args.len())),
        },
        _ => Ok(None),
    }
}

const WRAPPER_KEYS: [&str; 6] = [
    "state_dict",
    "model",
    "model_state_dict",
    "model_state",
    "module",
    "net",
];

/// State-dict entries, and the wrapper key they were found under.
type Entries = (Vec<(Value, Value)>, Option<String>);
/// Named tensor references, and the names of entries that are not tensors.
type Collected = (Vec<(String, TensorRef)>, Vec<String>);

/// The state dict inside `root`: `root` itself, or the entry `key`, or a usual wrapper key.
fn state_dict(path: &Path, root: Value, key: Option<&str>) -> Result<Entries> {
    let root = match root {
        Value::Build { obj, .. } => *obj,
        other => other,
    };
    let Value::Dict(entries) = root else {
        return Err(bad(path, "the checkpoint is not a dict of tensors"));
    };
    let lookup = |entries: &[(Value, Value)], k: &str| {
        entries
            .iter()
            .find(|(name, _)| name.as_str() == Some(k))
            .map(|(_, v)| v.clone())
    };
    if let Some(k) = key {
        return match lookup(&entries, k) {
            Some(Value::Dict(inner)) => Ok((inner, Some(k.to_string()))),
            Some(_) => Err(bad(path, format!("entry `{k}` is not a dict"))),
            None => Err(bad(path, format!("no entry `{k}`"))),
        };
    }
    let has_tensors = entries
        .iter()
        .any(|(_, v)| matches!(tensor_ref(v), Ok(Some(_))));
    if has_tensors {
        return Ok((entries, None));
    }
    for k in WRAPPER_KEYS {
        if let Some(Value::Dict(inner)) = lookup(&entries, k) {
            return Ok((inner, Some(k.to_string())));
        }
    }
    Err(bad(
        path,
        "found no tensors; name the entry holding the state dict with --key",
    ))
}

/// Named tensor references, and the names of non-tensor entries.
fn collect(path: &Path, entries: Vec<(Value, Value)>) -> Result<Collected> {
    let mut tensors = Vec::new();
    let mut skipped = Vec::new();
    for (name, v) in entries {
        let name = match name {
            Value::Str(s) => s,
            other => {
                return Err(bad(
                    path,
                    format!("state-dict key {other:?} is not a string"),
                ));
            }
        };
        match tensor_ref(&v) {
            Ok(Some(t)) => tensors.push((name, t)),
            Ok(None) => skipped.push(name),
            Err(reason) => return Err(bad(path, format!("tensor `{name}`: {reason}"))),
        }
    }
    Ok((tensors, skipped))
}

/// Builds a tensor from its storage bytes, gathering strided elements into row-major order.
fn materialise(
    path: &Path,
    name: &str,
    t: &TensorRef,
    storage: &[u8],
    base: usize,
) -> Result<Tensor> {
    let es = t.storage.dtype.size();
    let count: usize = t.shape.iter().product();
    if t.shape.len() != t.stride.len() {
        return Err(bad(
            path,
            format!("tensor `{name}`: size and stride ranks differ"),
        ));
    }
    let n_elems = storage.len() / es;
    let start = base + t.offset;
    let last = if count == 0 {
        start
    } else {
        start
            + t.shape
                .iter()
                .zip(&t.stride)
                .map(|(d, s)| (d - 1) * s)
                .sum::<usize>()
    };
    if count > 0 && last >= n_elems {
        return Err(bad(
            path,
            format!("tensor `{name}` reaches element {last} of a storage of {n_elems}"),
        ));
    }
    let contiguous = {
        let mut expect = 1;
        let mut ok = true;
        for (d, s) in t.shape.iter().zip(&t.stride).rev() {
            if *d != 1 && *s != expect {
                ok = false;
            }
            expect *= d;
        }
        ok
    };
    let bytes: Vec<u8> = if contiguous {
        storage[start * es..(start + count) * es].to_vec()
    } else {
        let mut out = Vec::with_capacity(count * es);
        let mut index = vec![0usize; t.shape.len()];
        for _ in 0..count {
            let e = start
                + index
                    .iter()
                    .zip(&t.stride)
                    .map(|(i, s)| i * s)
                    .sum::<usize>();
            out.extend_from_slice(&storage[e * es..(e + 1) * es]);
            for ax in (0..index.len()).rev() {
                index[ax] += 1;
                if index[ax] < t.shape[ax] {
                    break;
                }
                index[ax] = 0;
            }
        }
        out
    };
    let dev = Device::Cpu;
    let tensor = match t.storage.dtype {
        TorchDType::Candle(d) => Tensor::from_raw_buffer(&bytes, d, &t.shape, &dev)?,
        TorchDType::Bool => Tensor::from_raw_buffer(&bytes, DType::U8, &t.shape, &dev)?,
        TorchDType::I8 => {
            let wide: Vec<i16> = bytes.iter().map(|b| *b as i8 as i16).collect();
            Tensor::from_vec(wide, t.shape.as_slice(), &dev)?
        }
    };
    Ok(tensor)
}

fn read_zip(path: &Path, key: Option<&str>) -> Result<TorchCheckpoint> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| bad(path, format!("bad zip archive: {e}")))?;
    let pkl = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .filter(|n| n.ends_with("data.pkl"))
        .min_by_key(|n| n.len())
        .ok_or_else(|| Error::NotACheckpoint {
            path: path.into(),
            reason: "a zip archive without data.pkl".into(),
        })?;
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    if let Ok(mut f) = zip.by_name(&format!("{prefix}byteorder")) {
        let mut order = String::new();
        let _ = f.read_to_string(&mut order);
        if order.trim() != "little" {
            return Err(bad(
                path,
                format!("byte order `{}` is not supported", order.trim()),
            ));
        }
    }
    let root = {
        let entry = zip
            .by_name(&pkl)
            .map_err(|e| bad(path, format!("{pkl}: {e}")))?;
        pickle::parse(BufReader::new(entry), 0).map_err(|e| Error::Pickle {
            path: path.join(&pkl),
            offset: e.offset,
            reason: e.reason,
        })?
    };
    let (entries, found_key) = state_dict(path, root, key)?;
    let (refs, skipped) = collect(path, entries)?;
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    let mut tensors = Vec::with_capacity(refs.len());
    for (name, t) in refs {
        let k = &t.storage.key;
        if !storages.contains_key(k) {
            let entry_name = format!("{prefix}data/{k}");
            let mut entry = zip
                .by_name(&entry_name)
                .map_err(|e| bad(path, format!("storage {entry_name}: {e}")))?;
            let mut data = Vec::with_capacity(entry.size() as usize);
            entry
                .read_to_end(&mut data)
                .map_err(|e| Error::io(path.join(&entry_name), e))?;
            storages.insert(k.clone(), data);
        }
        let tensor = materialise(path, &name, &t, &storages[k], 0)?;
        tensors.push((name, tensor));
    }
    Ok(TorchCheckpoint {
        format: TorchFormat::Zip,
        tensors,
        skipped,
        key: found_key,
    })
}

/// Every storage a pickled object refers to: key → (element size, element count).
fn storage_sizes(v: &Value, out: &mut HashMap<String, (usize, usize)>) {
    match v {
        Value::Persistent(pid) => {
            if let Ok(id) = storage_id(pid) {
                out.insert(id.key, (id.dtype.size(), id.numel));
            }
        }
        Value::Tuple(items) | Value::List(items) | Value::Set(items) => {
            items.iter().for_each(|x| storage_sizes(x, out))
        }
        Value::Dict(pairs) => pairs.iter().for_each(|(k, x)| {
            storage_sizes(k, out);
            storage_sizes(x, out);
        }),
        Value::Call { func, args } => {
            storage_sizes(func, out);
            storage_sizes(args, out);
        }
        Value::Build { obj, state } => {
            storage_sizes(obj, out);
            storage_sizes(state, out);
        }
        _ => {}
    }
}

/// A reader that knows its position, for error offsets.
struct Counting<R> {
    inner: R,
    pos: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

fn read_legacy(path: &Path, key: Option<&str>) -> Result<TorchCheckpoint> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut r = Counting {
        inner: BufReader::new(file),
        pos: 0,
    };
    let next = |r: &mut Counting<BufReader<File>>| {
        let at = r.pos;
        pickle::parse(&mut *r, at).map_err(|e| Error::Pickle {
            path: path.into(),
            offset: e.offset,
            reason: e.reason,
        })
    };
    let not = |reason: &str| Error::NotACheckpoint {
        path: path.into(),
        reason: reason.into(),
    };
    match next(&mut r)? {
        Value::BigInt(b) if b == LEGACY_MAGIC => {}
        _ => return Err(not("a pickle without PyTorch's magic number")),
    }
    match next(&mut r)? {
        Value::Int(LEGACY_PROTOCOL) => {}
        other => {
            return Err(bad(
                path,
                format!("unsupported legacy protocol version {other:?}"),
            ));
        }
    }
    if let Value::Dict(info) = next(&mut r)? {
        let little = info
            .iter()
            .find(|(k, _)| k.as_str() == Some("little_endian"))
            .map(|(_, v)| v.clone());
        if little == Some(Value::Bool(false)) {
            return Err(bad(path, "big-endian checkpoints are not supported"));
        }
    }
    let root = next(&mut r)?;
    let keys = match next(&mut r)? {
        Value::List(keys) | Value::Tuple(keys) => keys
            .iter()
            .map(|k| k.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad(path, "storage keys are not strings"))?,
        other => {
            return Err(bad(
                path,
                format!("expected the storage key list, got {other:?}"),
            ));
        }
    };
    // Element size and count of every storage the object refers to (not only the state
    // dict's: all storages are written, and in key order).
    let mut sizes: HashMap<String, (usize, usize)> = HashMap::new();
    storage_sizes(&root, &mut sizes);
    let (entries, found_key) = state_dict(path, root, key)?;
    let (refs, skipped) = collect(path, entries)?;
    let used: std::collections::HashSet<&str> =
        refs.iter().map(|(_, t)| t.storage.key.as_str()).collect();
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    for k in &keys {
        let Some(&(es, expected)) = sizes.get(k) else {
            return Err(bad(path, format!("storage {k} is listed but never used")));
        };
        let mut count = [0u8; 8];
        r.read_exact(&mut count)
            .map_err(|_| bad(path, format!("truncated before storage {k}")))?;
        let numel = u64::from_le_bytes(count) as usize;
        if numel != expected {
            return Err(bad(
                path,
                format!("storage {k} holds {numel} elements, its tensors say {expected}"),
            ));
        }
        let mut data = vec![0u8; numel * es];
        r.read_exact(&mut data)
            .map_err(|_| bad(path, format!("storage {k} is truncated")))?;
        if used.contains(k.as_str()) {
            storages.insert(k.clone(), data);
        }
    }
    let mut tensors = Vec::with_capacity(refs.len());
    for (name, t) in refs {
        let data = storages.get(&t.storage.key).ok_or_else(|| {
            bad(
                path,
                format!("tensor `{name}`: storage {} missing", t.storage.key),
            )
        })?;
        let base = t.storage.view.as_ref().map_or(0, |v| v.1);
        tensors.push((name.clone(), materialise(path, &name, &t, data, base)?));
    }
    Ok(TorchCheckpoint {
        format: TorchFormat::Legacy,
        tensors,
        skipped,
        key: found_key,
    })
}

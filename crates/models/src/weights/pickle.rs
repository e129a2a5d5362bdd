//! A small pickle reader: enough of protocols 0–5 to read PyTorch checkpoints.
//!
//! It builds a tree of plain [`Value`]s and never runs code: a global (`module.name`) stays a
//! name, a call (`REDUCE`, `NEWOBJ`) stays a [`Value::Call`] for the caller to interpret. Objects
//! live in an arena while parsing, so that a container filled after being memoised (the usual
//! `EMPTY_DICT`, `BINPUT`, `SETITEMS` sequence) is seen filled through every reference to it.

use std::collections::HashMap;
use std::io::Read;

/// A parsed pickle object.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer that does not fit in 64 bits: little-endian two's complement bytes.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// Key-value pairs in insertion order (dicts and `collections.OrderedDict`).
    Dict(Vec<(Value, Value)>),
    Set(Vec<Value>),
    /// A reference to `module.name`.
    Global {
        module: String,
        name: String,
    },
    /// `func(*args)`.
    Call {
        func: Box<Value>,
        args: Box<Value>,
    },
    /// `obj.__setstate__(state)`.
    Build {
        obj: Box<Value>,
        state: Box<Value>,
    },
    /// A persistent id, which the caller resolves (PyTorch: a storage).
    Persistent(Box<Value>),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            Self::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// The items of a tuple or list.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Self::Tuple(v) | Self::List(v) => Some(v),
            _ => None,
        }
    }

    pub fn is_global(&self, module: &str, name: &str) -> bool {
        matches!(self, Self::Global { module: m, name: n } if m == module && n == name)
    }
}

/// Where and why parsing failed.
#[derive(Debug)]
pub struct PickleError {
    pub offset: u64,
    pub reason: String,
}

type Result<T> = std::result::Result<T, PickleError>;

/// An arena node: like [`Value`] but children are node indices.
#[derive(Debug, Clone)]
enum Node {
    Leaf(Value),
    Tuple(Vec<usize>),
    List(Vec<usize>),
    Dict(Vec<(usize, usize)>),
    Set(Vec<usize>),
    Call(usize, usize),
    Build(usize, usize),
    Persistent(usize),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    Mark,
    Node(usize),
}

struct Reader<R> {
    inner: R,
    offset: u64,
}

impl<R: Read> Reader<R> {
    fn fail<T>(&self, reason: impl Into<String>) -> Result<T> {
        Err(PickleError {
            offset: self.offset,
            reason: reason.into(),
        })
    }

    fn bytes(&mut self, n: usize) -> Result<Vec<u8>> {
        // Grow as data arrives rather than trusting a length read from the file.
        let mut buf = Vec::with_capacity(n.min(1 << 20));
        let read = (&mut self.inner)
            .take(n as u64)
            .read_to_end(&mut buf)
            .or_else(|e| self.fail(format!("read error: {e}")))?;
        if read != n {
            return self.fail(format!("truncated: wanted {n} bytes, got {read}"));
        }
        self.offset += n as u64;
        Ok(buf)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.inner
            .read_exact(&mut buf)
            .or_else(|_| self.fail("truncated"))?;
        self.offset += N as u64;
        Ok(buf)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn line(&mut self) -> Result<String> {
        let mut out = Vec::new();
        loop {
            match self.u8()? {
                b'\n' => break,
                b => out.push(b),
            }
            if out.len() > 1 << 16 {
                return self.fail("line too long");
            }
        }
        if out.last() == Some(&b'\r') {
            out.pop();
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

struct Machine {
    nodes: Vec<Node>,
    stack: Vec<Slot>,
    marks: Vec<usize>,
    memo: HashMap<u64, usize>,
}

impl Machine {
    fn push(&mut self, node: Node) {
        self.nodes.push(node);
        self.stack.push(Slot::Node(self.nodes.len() - 1));
    }

    fn leaf(&mut self, v: Value) {
        self.push(Node::Leaf(v));
    }
}

/// Parses one pickle from `r`, stopping after its `STOP` opcode. `offset` is where the pickle
/// starts in its file (for error positions).
pub fn parse<R: Read>(r: R, offset: u64) -> Result<Value> {
    let mut r = Reader { inner: r, offset };
    let mut m = Machine {
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    macro_rules! pop {
        () => {
            match m.stack.pop() {
                Some(Slot::Node(i)) => i,
                Some(Slot::Mark) => return r.fail("unexpected mark on the stack"),
                None => return r.fail("stack underflow"),
            }
        };
    }
    macro_rules! pop_mark {
        () => {{
            let Some(at) = m.marks.pop() else {
                return r.fail("no mark on the stack");
            };
            let items: Vec<Slot> = m.stack.split_off(at);
            // items[0] is the mark itself.
            let mut out = Vec::with_capacity(items.len());
            for s in items.into_iter().skip(1) {
                match s {
                    Slot::Node(i) => out.push(i),
                    Slot::Mark => return r.fail("nested mark"),
                }
            }
            out
        }};
    }
    macro_rules! top {
        () => {
            match m.stack.last() {
                Some(Slot::Node(i)) => *i,
                _ => return r.fail("expected an object on the stack"),
            }
        };
    }
    loop {
        let op = r.u8()?;
        match op {
            0x80 => {
                let proto = r.u8()?;
                if proto > 5 {
                    return r.fail(format!("unsupported pickle protocol {proto}"));
                }
            }
            0x95 => {
                r.array::<8>()?;
            }
            b'.' => break,
            b'(' => {
                m.marks.push(m.stack.len());
                m.stack.push(Slot::Mark);
            }
            b'0' => match m.stack.pop() {
                Some(Slot::Mark) => {
                    m.marks.pop();
                }
                Some(_) => {}
                None => return r.fail("stack underflow"),
            },
            b'1' => {
                pop_mark!();
            }
            b'2' => {
                let i = top!();
                m.stack.push(Slot::Node(i));
            }
            // Integers.
            b'I' => {
                let line = r.line()?;
                match line.as_str() {
                    "00" => m.leaf(Value::Bool(false)),
                    "01" => m.leaf(Value::Bool(true)),
                    s => match s.parse::<i64>() {
                        Ok(v) => m.leaf(Value::Int(v)),
                        Err(_) => return r.fail(format!("bad INT {s:?}")),
                    },
                }
            }
            b'J' => {
                let v = i32::from_le_bytes(r.array()?);
                m.leaf(Value::Int(v as i64));
            }
            b'K' => {
                let v = r.u8()?;
                m.leaf(Value::Int(v as i64));
            }
            b'M' => {
                let v = u16::from_le_bytes(r.array()?);
                m.leaf(Value::Int(v as i64));
            }
            b'L' => {
                let line = r.line()?;
                let s = line.trim_end_matches('L');
                match s.parse::<i64>() {
                    Ok(v) => m.leaf(Value::Int(v)),
                    Err(_) => m.leaf(Value::BigInt(s.as_bytes().to_vec())),
                }
            }
            0x8a | 0x8b => {
                let n = if op == 0x8a {
                    r.u8()? as usize
                } else {
                    let n = i32::from_le_bytes(r.array()?);
                    if n < 0 {
                        return r.fail("negative LONG4 length");
                    }
                    n as usize
                };
                let bytes = r.bytes(n)?;
                m.leaf(long_value(bytes));
            }
            // Floats.
            b'F' => {
                let line = r.line()?;
                match line.parse::<f64>() {
                    Ok(v) => m.leaf(Value::Float(v)),
                    Err(_) => return r.fail(format!("bad FLOAT {line:?}")),
                }
            }
            b'G' => {
                let v = f64::from_be_bytes(r.array()?);
                m.leaf(Value::Float(v));
            }
            // Strings and bytes.
            b'S' => {
                let line = r.line()?;
                let s = line
                    .strip_prefix(['\'', '"'])
                    .and_then(|s| s.strip_suffix(['\'', '"']))
                    .unwrap_or(&line);
                m.leaf(Value::Str(s.to_string()));
            }
            b'T' | b'U' | b'X' | 0x8c | 0x8d | b'B' | b'C' | 0x8e | 0x96 => {
                let n = match op {
                    b'U' | 0x8c | b'C' => r.u8()? as u64,
                    b'T' | b'X' | b'B' => u32::from_le_bytes(r.array()?) as u64,
                    _ => u64::from_le_bytes(r.array()?),
                };
                if n > 1 << 32 {
                    return r.fail(format!("string of {n} bytes"));
                }
                let bytes = r.bytes(n as usize)?;
                let v = match op {
                    b'B' | b'C' | 0x8e | 0x96 => Value::Bytes(bytes),
                    _ => Value::Str(String::from_utf8_lossy(&bytes).into_owned()),
                };
                m.leaf(v);
            }
            b'V' => {
                let line = r.line()?;
                m.leaf(Value::Str(line));
            }
            b'N' => m.leaf(Value::None),
            0x88 => m.leaf(Value::Bool(true)),
            0x89 => m.leaf(Value::Bool(false)),
            // Containers.
            b')' => m.push(Node::Tuple(Vec::new())),
            b't' => {
                let items = pop_mark!();
                m.push(Node::Tuple(items));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(pop!());
                }
                items.reverse();
                m.push(Node::Tuple(items));
            }
            b']' => m.push(Node::List(Vec::new())),
            b'l' => {
                let items = pop_mark!();
                m.push(Node::List(items));
            }
            b'a' | b'e' => {
                let items = if op == b'a' {
                    vec![pop!()]
                } else {
                    pop_mark!()
                };
                let list = top!();
                match &mut m.nodes[list] {
                    Node::List(v) => v.extend(items),
                    other => return r.fail(format!("APPEND to a non-list {other:?}")),
                }
            }
            b'}' => m.push(Node::Dict(Vec::new())),
            b'd' => {
                let items = pop_mark!();
                if items.len() % 2 != 0 {
                    return r.fail("DICT with an odd number of items");
                }
                m.push(Node::Dict(items.chunks(2).map(|p| (p[0], p[1])).collect()));
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    let v = pop!();
                    let k = pop!();
                    vec![k, v]
                } else {
                    pop_mark!()
                };
                if items.len() % 2 != 0 {
                    return r.fail("SETITEMS with an odd number of items");
                }
                let dict = top!();
                match &mut m.nodes[dict] {
                    Node::Dict(v) => v.extend(items.chunks(2).map(|p| (p[0], p[1]))),
                    other => return r.fail(format!("SETITEM on a non-dict {other:?}")),
                }
            }
            0x8f => m.push(Node::Set(Vec::new())),
            0x90 => {
                let items = pop_mark!();
                let set = top!();
                match &mut m.nodes[set] {
                    Node::Set(v) => v.extend(items),
                    other => return r.fail(format!("ADDITEMS on a non-set {other:?}")),
                }
            }
            0x91 => {
                let items = pop_mark!();
                m.push(Node::Set(items));
            }
            // Globals and calls.
            b'c' => {
                let module = r.line()?;
                let name = r.line()?;
                m.leaf(Value::Global { module, name });
            }
            0x93 => {
                let name = pop!();
                let module = pop!();
                let (Node::Leaf(Value::Str(module)), Node::Leaf(Value::Str(name))) =
                    (&m.nodes[module], &m.nodes[name])
                else {
                    return r.fail("STACK_GLOBAL needs two strings");
                };
                let v = Value::Global {
                    module: module.clone(),
                    name: name.clone(),
                };
                m.leaf(v);
            }
            b'R' | 0x81 => {
                let args = pop!();
                let func = pop!();
                // An OrderedDict (or dict subclass) built empty then filled by SETITEMS.
                let empty_args = matches!(&m.nodes[args], Node::Tuple(v) if v.is_empty());
                let is_dict = matches!(&m.nodes[func], Node::Leaf(g) if g.is_global("collections", "OrderedDict")
                    || g.is_global("collections", "defaultdict")
                    || g.is_global("builtins", "dict")
                    || g.is_global("__builtin__", "dict"));
                if is_dict
                    && (empty_args
                        || matches!(&m.nodes[func], Node::Leaf(g) if g.is_global("collections", "defaultdict")))
                {
                    m.push(Node::Dict(Vec::new()));
                } else {
                    m.push(Node::Call(func, args));
                }
            }
            0x92 => {
                let _kwargs = pop!();
                let args = pop!();
                let func = pop!();
                m.push(Node::Call(func, args));
            }
            b'b' => {
                let state = pop!();
                let obj = pop!();
                // Setting state on a dict-like object that PyTorch extends with attributes
                // (`_metadata`): keep the dict, drop the attributes.
                if matches!(m.nodes[obj], Node::Dict(_)) {
                    m.stack.push(Slot::Node(obj));
                } else {
                    m.push(Node::Build(obj, state));
                }
            }
            b'P' => {
                let line = r.line()?;
                let id = m.nodes.len();
                m.nodes.push(Node::Leaf(Value::Str(line)));
                m.push(Node::Persistent(id));
            }
            b'Q' => {
                let id = pop!();
                m.push(Node::Persistent(id));
            }
            // Memo.
            b'p' | b'q' | b'r' | 0x94 => {
                let key = match op {
                    b'p' => match r.line()?.parse::<u64>() {
                        Ok(k) => k,
                        Err(_) => return r.fail("bad PUT index"),
                    },
                    b'q' => r.u8()? as u64,
                    b'r' => u32::from_le_bytes(r.array()?) as u64,
                    _ => m.memo.len() as u64,
                };
                let i = top!();
                m.memo.insert(key, i);
            }
            b'g' | b'h' | b'j' => {
                let key = match op {
                    b'g' => match r.line()?.parse::<u64>() {
                        Ok(k) => k,
                        Err(_) => return r.fail("bad GET index"),
                    },
                    b'h' => r.u8()? as u64,
                    _ => u32::from_le_bytes(r.array()?) as u64,
                };
                let Some(&i) = m.memo.get(&key) else {
                    return r.fail(format!("memo key {key} not found"));
                };
                m.stack.push(Slot::Node(i));
            }
            other => {
                return r.fail(format!("unsupported opcode 0x{other:02x}"));
            }
        }
    }
    let root = match m.stack.pop() {
        Some(Slot::Node(i)) => i,
        _ => return r.fail("STOP with an empty stack"),
    };
    to_value(&m.nodes, root, 0).or_else(|reason| r.fail(reason))
}

fn long_value(bytes: Vec<u8>) -> Value {
    if bytes.is_empty() {
        return Value::Int(0);
    }
    if bytes.len() <= 8 {
        let negative = bytes[bytes.len() - 1] & 0x80 != 0;
        let mut buf = if negative { [0xffu8; 8] } else { [0u8; 8] };
        buf[..bytes.len()].copy_from_slice(&bytes);
        Value::Int(i64::from_le_bytes(buf))
    } else {
        Value::BigInt(bytes)
    }
}

fn to_value(nodes: &[Node], i: usize, depth: usize) -> std::result::Result<Value, String> {
    if depth > 256 {
        return Err("objects nested too deep (a cycle?)".into());
    }
    let v = |j: usize| to_value(nodes, j, depth + 1);
    let all = |ids: &[usize]| {
        ids.iter()
            .map(|&j| v(j))
            .collect::<std::result::Result<Vec<_>, _>>()
    };
    Ok(match &nodes[i] {
        Node::Leaf(x) => x.clone(),
        Node::Tuple(ids) => Value::Tuple(all(ids)?),
        Node::List(ids) => Value::List(all(ids)?),
        Node::Set(ids) => Value::Set(all(ids)?),
        Node::Dict(pairs) => Value::Dict(
            pairs
                .iter()
                .map(|&(k, x)| Ok((v(k)?, v(x)?)))
                .collect::<std::result::Result<Vec<_>, String>>()?,
        ),
        Node::Call(f, a) => Value::Call {
            func: Box::new(v(*f)?),
            args: Box::new(v(*a)?),
        },
        Node::Build(o, s) => Value::Build {
            obj: Box::new(v(*o)?),
            state: Box::new(v(*s)?),
        },
        Node::Persistent(id) => Value::Persistent(Box::new(v(*id)?)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bytes: &[u8], expected: Value) {
        let got = parse(bytes, 0).unwrap_or_else(|e| panic!("{bytes:?}: {e:?}"));
        assert_eq!(got, expected);
    }

    fn s(x: &str) -> Value {
        Value::Str(x.into())
    }

    #[test]
    fn scalars() {
        check(b"\x80\x02K\x07.", Value::Int(7));
        check(b"\x80\x02M\xe9\x03.", Value::Int(1001));
        check(b"\x80\x02J\xff\xff\xff\xff.", Value::Int(-1));
        check(b"\x80\x02\x8a\x01\xff.", Value::Int(-1));
        check(b"\x80\x02\x8a\x02\x00\x01.", Value::Int(256));
        check(
            b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.",
            Value::BigInt(vec![
                0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
            ]),
        );
        check(
            b"\x80\x02G?\xf8\x00\x00\x00\x00\x00\x00.",
            Value::Float(1.5),
        );
        check(b"\x80\x02X\x03\x00\x00\x00abc.", s("abc"));
        check(b"\x80\x04\x8c\x03abc\x94.", s("abc"));
        check(b"\x80\x02U\x03abc.", s("abc"));
        check(b"\x80\x02N.", Value::None);
        check(b"\x80\x02\x88.", Value::Bool(true));
        check(b"I01\n.", Value::Bool(true));
        check(b"I42\n.", Value::Int(42));
        check(b"L12L\n.", Value::Int(12));
        check(b"S'hi'\n.", s("hi"));
    }

    #[test]
    fn containers_memo_and_persistent_ids() {
        // {'a': (1, 2), 'b': [3]} with a memoised, later-filled dict fetched again by BINGET.
        check(
            b"\x80\x02}q\x00(X\x01\x00\x00\x00aK\x01K\x02\x86X\x01\x00\x00\x00b]q\x01K\x03au0h\x00.",
            Value::Dict(vec![
                (s("a"), Value::Tuple(vec![Value::Int(1), Value::Int(2)])),
                (s("b"), Value::List(vec![Value::Int(3)])),
            ]),
        );
        // OrderedDict() filled by SETITEMS, then BUILD with attributes: stays a dict.
        check(
            b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00kK\x05s}X\x09\x00\x00\x00_metadataNsb.",
            Value::Dict(vec![(s("k"), Value::Int(5))]),
        );
        // A call with a persistent id inside.
        check(
            b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(X\x01\x00\x00\x000QK\x00tR.",
            Value::Call {
                func: Box::new(Value::Global {
                    module: "torch._utils".into(),
                    name: "_rebuild_tensor_v2".into(),
                }),
                args: Box::new(Value::Tuple(vec![
                    Value::Persistent(Box::new(s("0"))),
                    Value::Int(0),
                ])),
            },
        );
    }

    #[test]
    fn malformed_pickles_are_errors_with_offsets() {
        for (bytes, at) in [
            (&b"\x80\x02K"[..], 3),
            (b"\x80\x02h\x05.", 4),
            (b"\x80\x02\xff.", 3),
            (b"\x80\x02X\xff\x00\x00\x00ab", 7),
            (b"\x80\x02t.", 3),
        ] {
            let err = parse(bytes, 0).unwrap_err();
            assert_eq!(err.offset, at, "{bytes:?}: {err:?}");
        }
    }
}

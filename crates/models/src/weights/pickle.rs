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

    fn pop<R: Read>(&mut self, r: &Reader<R>) -> Result<usize> {
        match self.stack.pop() {
            Some(Slot::Node(i)) => Ok(i),
            Some(Slot::Mark) => r.fail("unexpected mark on the stack"),
            None => r.fail("stack underflow"),
        }
    }

    /// The objects above the topmost mark, which is removed.
    fn pop_mark<R: Read>(&mut self, r: &Reader<R>) -> Result<Vec<usize>> {
        let Some(at) = self.marks.pop() else {
            return r.fail("no mark on the stack");
        };
        let items: Vec<Slot> = self.stack.split_off(at);
        // items[0] is the mark itself.
        let mut out = Vec::with_capacity(items.len());
        for s in items.into_iter().skip(1) {
            match s {
                Slot::Node(i) => out.push(i),
                Slot::Mark => return r.fail("nested mark"),
            }
        }
        Ok(out)
    }

    fn top<R: Read>(&self, r: &Reader<R>) -> Result<usize> {
        match self.stack.last() {
            Some(Slot::Node(i)) => Ok(*i),
            _ => r.fail("expected an object on the stack"),
        }
    }

    /// Executes one opcode. False at STOP.
    fn step<R: Read>(&mut self, op: u8, r: &mut Reader<R>) -> Result<bool> {
        match op {
            0x80 | 0x95 | b'.' | b'(' | b'0' | b'1' | b'2' => self.control(op, r),
            b'I' | b'J' | b'K' | b'M' | b'L' | 0x8a | 0x8b | b'F' | b'G' => {
                self.number(op, r).map(|()| true)
            }
            b'S' | b'T' | b'U' | b'X' | 0x8c | 0x8d | b'B' | b'C' | 0x8e | 0x96 | b'V' | b'N'
            | 0x88 | 0x89 => self.string(op, r).map(|()| true),
            b')'
            | b't'
            | 0x85..=0x87
            | b']'
            | b'l'
            | b'a'
            | b'e'
            | b'}'
            | b'd'
            | b's'
            | b'u'
            | 0x8f
            | 0x90
            | 0x91 => self.container(op, r).map(|()| true),
            b'c' | 0x93 | b'R' | 0x81 | 0x92 | b'b' | b'P' | b'Q' => {
                self.call(op, r).map(|()| true)
            }
            b'p' | b'q' | b'r' | 0x94 | b'g' | b'h' | b'j' => self.memo(op, r).map(|()| true),
            other => r.fail(format!("unsupported opcode 0x{other:02x}")),
        }
    }

    /// The stack and the protocol: PROTO, FRAME, STOP, MARK, POP, POP_MARK, DUP. False at STOP.
    fn control<R: Read>(&mut self, op: u8, r: &mut Reader<R>) -> Result<bool> {
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
            b'.' => return Ok(false),
            b'(' => {
                self.marks.push(self.stack.len());
                self.stack.push(Slot::Mark);
            }
            b'0' => match self.stack.pop() {
                Some(Slot::Mark) => {
                    self.marks.pop();
                }
                Some(_) => {}
                None => return r.fail("stack underflow"),
            },
            b'1' => {
                self.pop_mark(r)?;
            }
            b'2' => {
                let i = self.top(r)?;
                self.stack.push(Slot::Node(i));
            }
            _ => unreachable!("dispatched by `step`"),
        }
        Ok(true)
    }

    /// Integers and floats.
    fn number<R: Read>(&mut self, op: u8, r: &mut Reader<R>) -> Result<()> {
        match op {
            b'I' => {
                let line = r.line()?;
                match line.as_str() {
                    "00" => self.leaf(Value::Bool(false)),
                    "01" => self.leaf(Value::Bool(true)),
                    s => match s.parse::<i64>() {
                        Ok(v) => self.leaf(Value::Int(v)),
                        Err(_) => return r.fail(format!("bad INT {s:?}")),
                    },
                }
            }
            b'J' => {
                let v = i32::from_le_bytes(r.array()?);
                self.leaf(Value::Int(v as i64));
            }
            b'K' => {
                let v = r.u8()?;
                self.leaf(Value::Int(v as i64));
            }
            b'M' => {
                let v = u16::from_le_bytes(r.array()?);
                self.leaf(Value::Int(v as i64));
            }
            b'L' => {
                let line = r.line()?;
                let s = line.trim_end_matches('L');
                match s.parse::<i64>() {
                    Ok(v) => self.leaf(Value::Int(v)),
                    Err(_) => self.leaf(Value::BigInt(s.as_bytes().to_vec())),
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
                self.leaf(long_value(bytes));
            }
            // Floats.
            b'F' => {
                let line = r.line()?;
                match line.parse::<f64>() {
                    Ok(v) => self.leaf(Value::Float(v)),
                    Err(_) => return r.fail(format!("bad FLOAT {line:?}")),
                }
            }
            b'G' => {
                let v = f64::from_be_bytes(r.array()?);
                self.leaf(Value::Float(v));
            }
            _ => unreachable!("dispatched by `step`"),
        }
        Ok(())
    }

    /// Strings, bytes, None and booleans.
    fn string<R: Read>(&mut self, op: u8, r: &mut Reader<R>) -> Result<()> {
        match op {
            b'S' => {
                let line = r.line()?;
                let s = line
                    .strip_prefix(['\'', '"'])
                    .and_then(|s| s.strip_suffix(['\'', '"']))
                    .unwrap_or(&line);
                self.leaf(Value::Str(s.to_string()));
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
                self.leaf(v);
            }
            b'V' => {
                let line = r.line()?;
                self.leaf(Value::Str(line));
            }
            b'N' => self.leaf(Value::None),
            0x88 => self.leaf(Value::Bool(true)),
            0x89 => self.leaf(Value::Bool(false)),
            _ => unreachable!("dispatched by `step`"),
        }
        Ok(())
    }

    /// Tuples, lists, dicts and sets.
    fn container<R: Read>(&mut self, op: u8, r: &mut Reader<R>) -> Result<()> {
        match op {
            b')' => self.push(Node::Tuple(Vec::new())),
            b't' => {
                let items = self.pop_mark(r)?;
                self.push(Node::Tuple(items));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop(r)?);
                }
                items.reverse();
                self.push(Node::Tuple(items));
            }
            b']' => self.push(Node::List(Vec::new())),
            b'l' => {
                let items = self.pop_mark(r)?;
                self.push(Node::List(items));
            }
            b'a' | b'e' => {
                let items = if op == b'a' {
                    vec![self.pop(r)?]
                } else {
                    self.pop_mark(r)?
                };
                let list = self.top(r)?;
                match &mut self.nodes[list] {
                    Node::List(v) => v.extend(items),
                    other => return r.fail(format!("APPEND to a non-list {other:?}")),
                }
            }
            b'}' => self.push(Node::Dict(Vec::new())),
            b'd' => {
                let items = self.pop_mark(r)?;
                if items.len() % 2 != 0 {
                    return r.fail("DICT with an odd number of items");
                }
                self.push(Node::Dict(items.chunks(2).map(|p| (p[0], p[1])).collect()));
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    let v = self.pop(r)?;
                    let k = self.pop(r)?;
                    vec![k, v]
                } else {
                    self.pop_mark(r)?
                };
                if items.len() % 2 != 0 {
                    return r.fail("SETITEMS with an odd number of items");
                }
                let dict = self.top(r)?;
                match &mut self.nodes[dict] {
                    Node::Dict(v) => v.extend(items.chunks(2).map(|p| (p[0], p[1]))),
                    other => return r.fail(format!("SETITEM on a non-dict {other:?}")),
                }
            }
            0x8f => self.push(Node::Set(Vec::new())),
            0x90 => {
                let items = self.pop_mark(r)?;
                let set = self.top(r)?;
                match &mut self.nodes[set] {
                    Node::Set(v) => v.extend(items),
                    other => return r.fail(format!("ADDITEMS on a non-set {other:?}")),
                }
            }
            0x91 => {
                let items = self.pop_mark(r)?;
                self.push(Node::Set(items));
            }
            _ => unreachable!("dispatched by `step`"),
        }
        Ok(())
    }

    /// Globals, calls, object state and persistent ids.
    fn call<R: Read>(&mut self, op: u8, r: &mut Reader<R>) -> Result<()> {
        match op {
            b'c' => {
                let module = r.line()?;
                let name = r.line()?;
                self.leaf(Value::Global { module, name });
            }
            0x93 => {
                let name = self.pop(r)?;
                let module = self.pop(r)?;
                let (Node::Leaf(Value::Str(module)), Node::Leaf(Value::Str(name))) =
                    (&self.nodes[module], &self.nodes[name])
                else {
                    return r.fail("STACK_GLOBAL needs two strings");
                };
                let v = Value::Global {
                    module: module.clone(),
                    name: name.clone(),
                };
                self.leaf(v);
            }
            b'R' | 0x81 => {
                let args = self.pop(r)?;
                let func = self.pop(r)?;
                // An OrderedDict (or dict subclass) built empty then filled by SETITEMS.
                let empty_args = matches!(&self.nodes[args], Node::Tuple(v) if v.is_empty());
                let is_dict = matches!(&self.nodes[func], Node::Leaf(g) if g.is_global("collections", "OrderedDict")
                    || g.is_global("collections", "defaultdict")
                    || g.is_global("builtins", "dict")
                    || g.is_global("__builtin__", "dict"));
                if is_dict
                    && (empty_args
                        || matches!(&self.nodes[func], Node::Leaf(g) if g.is_global("collections", "defaultdict")))
                {
                    self.push(Node::Dict(Vec::new()));
                } else {
                    self.push(Node::Call(func, args));
                }
            }
            0x92 => {
                let _kwargs = self.pop(r)?;
                let args = self.pop(r)?;
                let func = self.pop(r)?;
                self.push(Node::Call(func, args));
            }
            b'b' => {
                let state = self.pop(r)?;
                let obj = self.pop(r)?;
                // Setting state on a dict-like object that PyTorch extends with attributes
                // (`_metadata`): keep the dict, drop the attributes.
                if matches!(self.nodes[obj], Node::Dict(_)) {
                    self.stack.push(Slot::Node(obj));
                } else {
                    self.push(Node::Build(obj, state));
                }
            }
            b'P' => {
                let line = r.line()?;
                let id = self.nodes.len();
                self.nodes.push(Node::Leaf(Value::Str(line)));
                self.push(Node::Persistent(id));
            }
            b'Q' => {
                let id = self.pop(r)?;
                self.push(Node::Persistent(id));
            }
            _ => unreachable!("dispatched by `step`"),
        }
        Ok(())
    }

    /// The memo: PUT and GET.
    fn memo<R: Read>(&mut self, op: u8, r: &mut Reader<R>) -> Result<()> {
        match op {
            b'p' | b'q' | b'r' | 0x94 => {
                let key = match op {
                    b'p' => match r.line()?.parse::<u64>() {
                        Ok(k) => k,
                        Err(_) => return r.fail("bad PUT index"),
                    },
                    b'q' => r.u8()? as u64,
                    b'r' => u32::from_le_bytes(r.array()?) as u64,
                    _ => self.memo.len() as u64,
                };
                let i = self.top(r)?;
                self.memo.insert(key, i);
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
                let Some(&i) = self.memo.get(&key) else {
                    return r.fail(format!("memo key {key} not found"));
                };
                self.stack.push(Slot::Node(i));
            }
            _ => unreachable!("dispatched by `step`"),
        }
        Ok(())
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
    loop {
        let op = r.u8()?;
        if !m.step(op, &mut r)? {
            break;
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

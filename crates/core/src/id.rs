use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The id of a stored object: the blake3 hash of its original bytes, written as 64 lowercase hex
/// digits. Stable across platforms and releases; an object's file is named by it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentId([u8; 32]);

impl ContentId {
    /// The id of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({})", self.to_hex())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid content id {found:?}: expected 64 lowercase hex digits")]
pub struct ParseContentIdError {
    pub found: String,
}

impl FromStr for ContentId {
    type Err = ParseContentIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseContentIdError {
            found: s.to_string(),
        };
        if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(err());
        }
        blake3::Hash::from_hex(s)
            .map(|h| Self(*h.as_bytes()))
            .map_err(|_| err())
    }
}

impl Serialize for ContentId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for ContentId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A keyed blake3 hash for anything persisted or decision-making (word choice, split
/// assignment, query ids). `context` names the purpose and version, so that two uses never
/// collide and a change of scheme is a change of context string; `key` is the user's key or
/// seed; `parts` are hashed with length prefixes so that `("ab","c")` and `("a","bc")` differ.
pub fn keyed_hash(context: &str, key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    KeyedHasher::new(context, key).hash(parts)
}

/// [`keyed_hash`] with the key derived once, for hashing many items under one context and key.
#[derive(Clone)]
pub struct KeyedHasher {
    derived: [u8; 32],
}

impl KeyedHasher {
    pub fn new(context: &str, key: &[u8]) -> Self {
        Self {
            derived: blake3::derive_key(context, key),
        }
    }

    /// Same result as `keyed_hash(context, key, parts)`.
    pub fn hash(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.derived);
        for p in parts {
            h.update(&(p.len() as u64).to_le_bytes());
            h.update(p);
        }
        *h.finalize().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_id_is_blake3_hex_and_round_trips() {
        let id = ContentId::of(b"hello");
        assert_eq!(
            id.to_hex(),
            "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f"
        );
        assert_eq!(id.to_hex().parse::<ContentId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<ContentId>(&json).unwrap(), id);
    }

    #[test]
    fn content_id_rejects_bad_text() {
        for bad in ["", "xyz", &"A".repeat(64), &"0".repeat(63)] {
            assert!(bad.parse::<ContentId>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn keyed_hash_separates_parts_contexts_and_keys() {
        let a = keyed_hash("ctx v1", b"k", &[b"ab", b"c"]);
        assert_ne!(a, keyed_hash("ctx v1", b"k", &[b"a", b"bc"]));
        assert_ne!(a, keyed_hash("ctx v2", b"k", &[b"ab", b"c"]));
        assert_ne!(a, keyed_hash("ctx v1", b"K", &[b"ab", b"c"]));
        assert_eq!(a, keyed_hash("ctx v1", b"k", &[b"ab", b"c"]));
    }
}

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Why a class or group name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a name cannot be empty")]
    Empty,
    #[error("{name:?} is {len} characters long; names are at most 64")]
    TooLong { name: String, len: usize },
    #[error(
        "{name:?} has {bad:?}; names use lowercase ASCII letters, digits, '_' and '-', and start with a letter or digit"
    )]
    BadChar { name: String, bad: char },
}

/// Checks a class or group name. Names become folder names in exports and keys in manifests, so
/// they are kept to `[a-z0-9][a-z0-9_-]{0,63}`.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    let Some(first) = name.chars().next() else {
        return Err(NameError::Empty);
    };
    if name.len() > 64 {
        return Err(NameError::TooLong {
            name: name.to_string(),
            len: name.len(),
        });
    }
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Err(NameError::BadChar {
            name: name.to_string(),
            bad: first,
        });
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-'))
    {
        return Err(NameError::BadChar {
            name: name.to_string(),
            bad,
        });
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $ty(String);

        impl $ty {
            pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
                let name = name.into();
                validate_name(&name)?;
                Ok(Self(name))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($ty), self.0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type! {
    /// A class the model learns to tell apart, for example `john` or `not_john`.
    Label
}

name_type! {
    /// A named set of images that share queries and a wanted count, for example `paul` or
    /// `word_teapot`. Every group belongs to exactly one class.
    Group
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "john",
            "not_john",
            "word_teapot",
            "eval-paul",
            "x1",
            "9lives",
        ] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_name(""), Err(NameError::Empty));
        assert!(matches!(
            validate_name("John"),
            Err(NameError::BadChar { bad: 'J', .. })
        ));
        assert!(matches!(
            validate_name("_x"),
            Err(NameError::BadChar { bad: '_', .. })
        ));
        assert!(matches!(
            validate_name("a b"),
            Err(NameError::BadChar { bad: ' ', .. })
        ));
        assert!(matches!(
            validate_name("a/b"),
            Err(NameError::BadChar { bad: '/', .. })
        ));
        assert!(matches!(
            validate_name(&"a".repeat(65)),
            Err(NameError::TooLong { .. })
        ));
    }
}

//! Lennonnet's configuration: the TOML schema, its defaults and its validation.
//!
//! Loading is strict. Unknown keys are errors, names carry their units (`timeout_secs`,
//! `max_bytes`), and every error names the file, the line, the column and the key, and says
//! what was expected and what was found. Cross-field checks (a group's label is a declared
//! class, group names are unique, counts are positive, ...) are made after parsing and point at
//! the offending key in the same way.
//!
//! Relative paths in a config file (`dataset.root_dir`, `words.file`) are relative to the
//! folder that holds the config file, so a config means the same thing from any working
//! directory.

mod error;
mod schema;
mod validate;
mod words;

use std::path::{Path, PathBuf};

pub use error::{ConfigError, Location};
pub use schema::*;
pub use validate::WIKIMEDIA_UA_POLICY;
pub use words::{WORDS_COMMENT, parse_word_list};

/// The largest config file or word list read (a bigger one is not a config).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Reads a text file of at most `max` bytes. Anything but a regular file (a FIFO would block
/// the read forever, a device never end) and anything larger is refused with an
/// `InvalidInput` error saying so, before a byte is read.
pub fn read_small_file(path: &std::path::Path, max: u64) -> std::io::Result<String> {
    use std::io::Read;
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{} bytes, more than the {max} a file of this kind may hold",
                meta.len()
            ),
        ));
    }
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// Reads, parses and validates the config file at `path`, and loads the word list it names.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let src = read_small_file(path, MAX_CONFIG_BYTES).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut config = parse(&src, path)?;
    config.resolve_paths(&base);
    if let Some(words) = &mut config.words {
        let text = read_small_file(&words.file, MAX_CONFIG_BYTES).map_err(|e| {
            error::key_error(
                &src,
                path,
                &[error::PathPart::Key("words"), error::PathPart::Key("file")],
                format!("cannot read the word list {}: {e}", words.file.display()),
            )
        })?;
        words.list = parse_word_list(&text, &words.file)?;
        validate::check_words(words, &src, path)?;
    }
    Ok(config)
}

/// [`load`], then the checks made before requests go to the real engines: the User-Agent sent
/// to the real Wikimedia Commons must name a real contact when the plan uses it (Wikimedia's
/// User-Agent policy). Commands that search call this; commands that only read a config call
/// [`load`], so a plan can be looked at before a contact is filled in.
pub fn load_for_requests(path: &Path) -> Result<Config, ConfigError> {
    let config = load(path)?;
    let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    validate::check_for_requests(&config, &src, path)?;
    Ok(config)
}

/// Parses and validates config text. `path` is only used in error messages. Word lists are not
/// read: [`Config::words`]'s `list` stays empty.
pub fn parse(src: &str, path: &Path) -> Result<Config, ConfigError> {
    let de =
        toml::de::Deserializer::parse(src).map_err(|e| error::from_toml(e, None, src, path))?;
    let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
        let key_path = e.path().clone();
        error::from_toml(e.into_inner(), Some(&key_path), src, path)
    })?;
    validate::check(&config, src, path)?;
    Ok(config)
}

impl Config {
    fn resolve_paths(&mut self, base: &Path) {
        let join = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        join(&mut self.dataset.root_dir);
        if let Some(words) = &mut self.words {
            join(&mut words.file);
        }
    }

    /// The folder of this config's dataset: `<root_dir>/<name>`.
    pub fn dataset_dir(&self) -> PathBuf {
        self.dataset.root_dir.join(self.dataset.name.as_str())
    }
}

#[cfg(test)]
mod tests;

//! Real images instead of rendered ones: a folder with one sub-folder per group.

use std::path::{Path, PathBuf};

use lennonnet_core::keyed_hash;

use crate::error::{MirrorError, Result};
use crate::spec::Format;

/// One real image file.
#[derive(Debug, Clone)]
pub struct CorpusFile {
    pub name: String,
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    pub format: Format,
}

/// One sub-folder.
#[derive(Debug, Clone)]
pub struct CorpusGroup {
    pub name: String,
    pub files: Vec<CorpusFile>,
}

/// The corpus: groups in byte order of their names, files in byte order of theirs.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub root: PathBuf,
    pub groups: Vec<CorpusGroup>,
    /// A keyed hash of every group and file name and size: part of the world's key, so URLs of
    /// one corpus are refused by a mirror serving another.
    pub fingerprint: [u8; 32],
}

impl Corpus {
    /// Reads the folder. Files that are not JPEG, PNG, WebP or GIF images are skipped with a
    /// warning; sub-folders without images are left out.
    pub fn load(root: &Path) -> Result<Self> {
        let read = |p: &Path| {
            std::fs::read_dir(p).map_err(|source| MirrorError::ReadCorpus {
                path: p.to_path_buf(),
                source,
            })
        };
        let mut dirs: Vec<(String, PathBuf)> = Vec::new();
        for entry in read(root)? {
            let entry = entry.map_err(|source| MirrorError::ReadCorpus {
                path: root.to_path_buf(),
                source,
            })?;
            if entry.path().is_dir() {
                dirs.push((
                    entry.file_name().to_string_lossy().into_owned(),
                    entry.path(),
                ));
            }
        }
        dirs.sort();
        let mut groups = Vec::new();
        let mut parts: Vec<Vec<u8>> = Vec::new();
        for (name, dir) in dirs {
            let mut files = Vec::new();
            let mut entries: Vec<PathBuf> = read(&dir)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            entries.sort();
            for path in entries {
                match probe(&path) {
                    Some((width, height, format)) => {
                        let file_name = path
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                        parts.push(format!("{name}/{file_name}/{len}").into_bytes());
                        files.push(CorpusFile {
                            name: file_name,
                            path,
                            width,
                            height,
                            format,
                        });
                    }
                    None => tracing::warn!(path = %path.display(), "not an image; skipped"),
                }
            }
            if !files.is_empty() {
                groups.push(CorpusGroup { name, files });
            }
        }
        if groups.is_empty() || groups.len() > u16::MAX as usize {
            return Err(MirrorError::EmptyCorpus {
                path: root.to_path_buf(),
            });
        }
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let fingerprint = keyed_hash("lennonnet mirror corpus v1", b"", &refs);
        tracing::info!(
            root = %root.display(),
            groups = groups.len(),
            files = groups.iter().map(|g| g.files.len()).sum::<usize>(),
            "corpus loaded"
        );
        Ok(Self {
            root: root.to_path_buf(),
            groups,
            fingerprint,
        })
    }

    pub fn group_index(&self, name: &str) -> Option<u16> {
        self.groups
            .iter()
            .position(|g| g.name == name)
            .map(|i| i as u16)
    }

    pub fn group_names(&self) -> Vec<&str> {
        self.groups.iter().map(|g| g.name.as_str()).collect()
    }

    /// The file at `index` of group `g` (indices wrap around).
    pub fn file(&self, g: u16, index: u32) -> &CorpusFile {
        let files = &self.groups[g as usize % self.groups.len()].files;
        &files[index as usize % files.len()]
    }
}

/// Size and format from the file's header, without decoding it.
fn probe(path: &Path) -> Option<(u32, u32, Format)> {
    let reader = image::ImageReader::open(path)
        .ok()?
        .with_guessed_format()
        .ok()?;
    let format = match reader.format()? {
        image::ImageFormat::Jpeg => Format::JpegBaseline,
        image::ImageFormat::Png => Format::Png,
        image::ImageFormat::WebP => Format::Webp,
        image::ImageFormat::Gif => Format::Gif,
        _ => return None,
    };
    let (w, h) = reader.into_dimensions().ok()?;
    Some((w, h, format))
}

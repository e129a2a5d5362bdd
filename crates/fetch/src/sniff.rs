//! Content sniffing from magic bytes: what a body really is, whatever its URL or
//! `Content-Type` claim.

use serde::{Deserialize, Serialize};

/// What the first bytes of a body say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sniffed {
    Jpeg,
    Png,
    Gif,
    Webp,
    Bmp,
    Tiff,
    Avif,
    Ico,
    /// An HTML page (an error page, a login wall, a soft 404).
    Html,
    /// SVG or other XML.
    Xml,
    /// Other text (JSON, plain text).
    Text,
    Empty,
    Unknown,
}

impl Sniffed {
    /// Whether the body is a raster image format the store may accept.
    pub fn is_image(self) -> bool {
        matches!(
            self,
            Sniffed::Jpeg
                | Sniffed::Png
                | Sniffed::Gif
                | Sniffed::Webp
                | Sniffed::Bmp
                | Sniffed::Tiff
                | Sniffed::Avif
                | Sniffed::Ico
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Sniffed::Jpeg => "jpeg",
            Sniffed::Png => "png",
            Sniffed::Gif => "gif",
            Sniffed::Webp => "webp",
            Sniffed::Bmp => "bmp",
            Sniffed::Tiff => "tiff",
            Sniffed::Avif => "avif",
            Sniffed::Ico => "ico",
            Sniffed::Html => "html",
            Sniffed::Xml => "xml",
            Sniffed::Text => "text",
            Sniffed::Empty => "empty",
            Sniffed::Unknown => "unknown",
        }
    }
}

/// Sniffs `bytes` (the first few hundred are enough).
pub fn sniff(bytes: &[u8]) -> Sniffed {
    let starts = |m: &[u8]| bytes.starts_with(m);
    if bytes.is_empty() {
        return Sniffed::Empty;
    }
    if starts(&[0xff, 0xd8, 0xff]) {
        return Sniffed::Jpeg;
    }
    if starts(b"\x89PNG\r\n\x1a\n") {
        return Sniffed::Png;
    }
    if starts(b"GIF87a") || starts(b"GIF89a") {
        return Sniffed::Gif;
    }
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Sniffed::Webp;
    }
    if starts(b"BM") && bytes.len() >= 14 {
        return Sniffed::Bmp;
    }
    if starts(b"II*\0") || starts(b"MM\0*") {
        return Sniffed::Tiff;
    }
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" && matches!(&bytes[8..12], b"avif" | b"avis") {
        return Sniffed::Avif;
    }
    if starts(&[0, 0, 1, 0]) && bytes.len() >= 6 {
        return Sniffed::Ico;
    }
    text_kind(bytes)
}

fn text_kind(bytes: &[u8]) -> Sniffed {
    let head = &bytes[..bytes.len().min(512)];
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let trimmed: &[u8] = {
        let start = head
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(head.len());
        &head[start..]
    };
    let lower: Vec<u8> = trimmed
        .iter()
        .take(64)
        .map(u8::to_ascii_lowercase)
        .collect();
    if lower.starts_with(b"<!doctype html")
        || lower.starts_with(b"<html")
        || lower.starts_with(b"<head")
        || lower.starts_with(b"<body")
        || lower.starts_with(b"<!--")
    {
        return Sniffed::Html;
    }
    if lower.starts_with(b"<?xml") || lower.starts_with(b"<svg") {
        return Sniffed::Xml;
    }
    let printable = head
        .iter()
        .filter(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
        .count();
    if printable * 100 >= head.len() * 95 {
        if lower.starts_with(b"<") {
            return Sniffed::Html;
        }
        return Sniffed::Text;
    }
    Sniffed::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes_decide() {
        let check = |bytes: &[u8], expected: Sniffed| {
            assert_eq!(
                sniff(bytes),
                expected,
                "{:?}",
                String::from_utf8_lossy(bytes)
            )
        };
        check(b"\xff\xd8\xff\xe0\0\x10JFIF", Sniffed::Jpeg);
        check(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", Sniffed::Png);
        check(b"GIF89a\x01\0\x01\0", Sniffed::Gif);
        check(b"RIFF\x24\0\0\0WEBPVP8 ", Sniffed::Webp);
        check(b"BM\x36\0\0\0\0\0\0\0\x36\0\0\0", Sniffed::Bmp);
        check(b"II*\0\x08\0\0\0", Sniffed::Tiff);
        check(b"\0\0\0\x1cftypavif\0\0\0\0", Sniffed::Avif);
        check(b"  <!DOCTYPE html><html>", Sniffed::Html);
        check(b"\xef\xbb\xbf<html lang=en>", Sniffed::Html);
        check(b"<p>Not found</p>", Sniffed::Html);
        check(b"<?xml version='1.0'?><svg/>", Sniffed::Xml);
        check(b"<svg xmlns='http://www.w3.org/2000/svg'/>", Sniffed::Xml);
        check(b"{\"error\": \"not found\"}", Sniffed::Text);
        check(b"", Sniffed::Empty);
        check(
            &[0x00, 0x9c, 0xfe, 0x01, 0x80, 0x81, 0x82, 0x83],
            Sniffed::Unknown,
        );
    }
}

//! URLs: image hosts, Commons files and thumbnails, engine thumbnails, pages and redirects.

use super::{DOMAIN, IMAGE_HOSTS, ResultItem, World};
use crate::spec::{Delivery, ImageSpec, Variant, VariantKind};

const HOST_PREFIXES: [&str; 8] = [
    "wp-content/uploads/2019/11",
    "images",
    "media/photos",
    "uploads",
    "i",
    "cdn/img",
    "files/large",
    "pics",
];

impl World {
    /// The host name of image host `i`.
    pub fn image_host(i: u8) -> String {
        format!("img{i:02}.{DOMAIN}")
    }

    /// The absolute URL of a result's image, on `port`.
    pub fn image_url(&self, item: &ResultItem, port: u16) -> String {
        self.spec_url(&item.spec, item.host, &item.slug, port)
    }

    /// The URL of a spec on image host `host`.
    pub fn spec_url(&self, spec: &ImageSpec, host: u8, slug: &str, port: u16) -> String {
        let ext = self.look(spec).format.ext();
        let prefix = HOST_PREFIXES[host as usize % HOST_PREFIXES.len()];
        format!(
            "http://{}:{port}/{prefix}/{}/{slug}.{ext}",
            Self::image_host(host),
            spec.token(&self.key)
        )
    }

    /// The URL of a Wikimedia Commons file (host `upload.mirror.test`).
    pub fn commons_url(&self, spec: &ImageSpec, file_name: &str, port: u16) -> String {
        let h = blake3::hash(file_name.as_bytes()).to_hex();
        format!(
            "http://upload.{DOMAIN}:{port}/wikipedia/commons/{}/{}/{}/{}",
            &h[..1],
            &h[..2],
            spec.token(&self.key),
            percent_path(file_name)
        )
    }

    /// The URL of a Wikimedia Commons thumbnail `width` pixels wide:
    /// `/wikipedia/commons/thumb/<h>/<hh>/<token>/<File_name>/<W>px-<File_name>`.
    pub fn commons_thumb_url(
        &self,
        spec: &ImageSpec,
        file_name: &str,
        port: u16,
        width: u32,
    ) -> String {
        let h = blake3::hash(file_name.as_bytes()).to_hex();
        let name = percent_path(file_name);
        format!(
            "http://upload.{DOMAIN}:{port}/wikipedia/commons/thumb/{}/{}/{}/{name}/{width}px-{name}",
            &h[..1],
            &h[..2],
            spec.token(&self.key),
        )
    }

    /// A thumbnail URL as the engines give them (`tse1.mirror.test/th?id=OIP.<token>&pid=Api`).
    pub fn thumbnail_url(&self, item: &ResultItem, port: u16) -> String {
        let spec = self.thumbnail_spec(&item.spec);
        let n = 1 + (spec.variant.nonce % 4);
        format!(
            "http://tse{n}.{DOMAIN}:{port}/th?id=OIP.{}&pid=Api",
            spec.token(&self.key)
        )
    }

    /// The spec of an engine's thumbnail of a result: a thumbnail copy that always answers.
    pub fn thumbnail_spec(&self, spec: &ImageSpec) -> ImageSpec {
        ImageSpec {
            original: spec.original.clone(),
            variant: Variant {
                kind: VariantKind::Thumbnail,
                nonce: spec.url_nonce | 1,
            },
            delivery: Delivery::Ok,
            hops: 0,
            url_nonce: spec.url_nonce,
        }
    }

    /// The page a result was found on.
    pub fn page_url(&self, item: &ResultItem, port: u16) -> String {
        format!(
            "http://www.{}.{DOMAIN}:{port}/{}-{}.html",
            item.site,
            item.slug,
            item.spec.url_nonce % 100_000
        )
    }

    /// Where a redirecting URL points: the next link of a chain (one hop less, on another
    /// host), or the next step of a loop.
    pub fn redirect_target(&self, spec: &ImageSpec, host: u8, port: u16) -> String {
        let mut next = spec.clone();
        match spec.delivery {
            Delivery::RedirectChain => {
                next.hops = spec.hops.saturating_sub(1);
            }
            _ => next.hops = (spec.hops + 1) % 3,
        }
        let next_host = (host as u32 + 1 + (spec.url_nonce % 7)) % IMAGE_HOSTS as u32;
        self.spec_url(&next, next_host as u8, &format!("r{}", next.hops), port)
    }
}

/// A URL slug: lowercase ASCII letters and digits joined by '-'.
pub fn slugify(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    let out = &out[..out.len().min(60)];
    if out.is_empty() {
        "image".to_string()
    } else {
        out.trim_end_matches('-').to_string()
    }
}

/// Percent-encodes everything but unreserved characters (like JavaScript's encodeURIComponent,
/// except that it also encodes `!'()*`).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out += &format!("%{b:02X}");
        }
    }
    out
}

fn percent_path(s: &str) -> String {
    percent_encode(&s.replace(' ', "_")).replace("%2F", "/")
}

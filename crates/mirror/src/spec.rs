//! What one image URL stands for, and how that is written into the URL.
//!
//! Every image URL carries a short token: the [`ImageSpec`] in a compact binary form, base64url,
//! followed by a MAC keyed by the world's key. The server needs no table to answer a URL, a URL
//! from another seed is refused (404), and ground truth can be read off any URL.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

/// The four rendered identities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Beatle {
    John,
    Paul,
    George,
    Ringo,
}

impl Beatle {
    pub const ALL: [Beatle; 4] = [Beatle::John, Beatle::Paul, Beatle::George, Beatle::Ringo];

    pub fn as_str(self) -> &'static str {
        match self {
            Beatle::John => "john",
            Beatle::Paul => "paul",
            Beatle::George => "george",
            Beatle::Ringo => "ringo",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.as_str() == s)
    }

    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The name as a search engine's title would write it.
    pub fn full_name(self) -> &'static str {
        match self {
            Beatle::John => "John Lennon",
            Beatle::Paul => "Paul McCartney",
            Beatle::George => "George Harrison",
            Beatle::Ringo => "Ringo Starr",
        }
    }
}

/// Who or what an original picture shows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Beatle(Beatle),
    /// A random person; the original's index says which one.
    Person,
    /// A scene for a word (the normalised query text).
    Word(String),
    /// A group picture: the Beatles in `beatles` (a bit mask) and `people` random people.
    Group {
        beatles: u8,
        people: u8,
    },
    /// A real image: the corpus sub-folder with this index (in byte order of names).
    Corpus(u16),
}

/// One original picture: a subject and its index among the subject's pictures.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Original {
    pub subject: Subject,
    pub index: u32,
}

/// Which copy of an original a URL serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VariantKind {
    Original,
    Reencoded,
    Resized,
    Cropped,
    Watermarked,
    Thumbnail,
}

impl VariantKind {
    pub const ALL: [VariantKind; 6] = [
        VariantKind::Original,
        VariantKind::Reencoded,
        VariantKind::Resized,
        VariantKind::Cropped,
        VariantKind::Watermarked,
        VariantKind::Thumbnail,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VariantKind::Original => "original",
            VariantKind::Reencoded => "reencoded",
            VariantKind::Resized => "resized",
            VariantKind::Cropped => "cropped",
            VariantKind::Watermarked => "watermarked",
            VariantKind::Thumbnail => "thumbnail",
        }
    }
}

/// A copy: its kind and the nonce that picks its parameters (0 for the original).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Variant {
    pub kind: VariantKind,
    pub nonce: u32,
}

impl Variant {
    pub const ORIGINAL: Variant = Variant {
        kind: VariantKind::Original,
        nonce: 0,
    };
}

/// How a URL answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    Ok,
    NotFound,
    Gone,
    ServerError,
    SlowFirstByte,
    Trickle,
    WrongContentType,
    Html200,
    Truncated,
    Bomb,
    Huge,
    RedirectChain,
    RedirectLoop,
}

impl Delivery {
    pub const ALL: [Delivery; 13] = [
        Delivery::Ok,
        Delivery::NotFound,
        Delivery::Gone,
        Delivery::ServerError,
        Delivery::SlowFirstByte,
        Delivery::Trickle,
        Delivery::WrongContentType,
        Delivery::Html200,
        Delivery::Truncated,
        Delivery::Bomb,
        Delivery::Huge,
        Delivery::RedirectChain,
        Delivery::RedirectLoop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Ok => "none",
            Delivery::NotFound => "not_found",
            Delivery::Gone => "gone",
            Delivery::ServerError => "server_error",
            Delivery::SlowFirstByte => "slow_first_byte",
            Delivery::Trickle => "trickle",
            Delivery::WrongContentType => "wrong_content_type",
            Delivery::Html200 => "html_200",
            Delivery::Truncated => "truncated",
            Delivery::Bomb => "bomb",
            Delivery::Huge => "huge",
            Delivery::RedirectChain => "redirect_chain",
            Delivery::RedirectLoop => "redirect_loop",
        }
    }

    /// Whether the URL ends in the picture's full bytes (possibly slowly, possibly mislabelled).
    pub fn yields_image(self) -> bool {
        matches!(
            self,
            Delivery::Ok
                | Delivery::SlowFirstByte
                | Delivery::Trickle
                | Delivery::WrongContentType
                | Delivery::RedirectChain
        )
    }

    fn code(self) -> u8 {
        Delivery::ALL.iter().position(|d| *d == self).unwrap() as u8
    }
}

/// Everything an image URL stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageSpec {
    pub original: Original,
    pub variant: Variant,
    pub delivery: Delivery,
    /// Redirect chain: redirects still to come. Redirect loop: the step in the loop.
    pub hops: u8,
    /// Makes URLs of the same content distinct.
    pub url_nonce: u32,
}

const TOKEN_VERSION: u8 = 1;
const MAC_LEN: usize = 6;
const MAC_CONTEXT: &str = "lennonnet mirror url token v1";

impl ImageSpec {
    /// The URL token: compact binary, then a MAC under `key`, in base64url without padding.
    pub fn token(&self, key: &[u8; 32]) -> String {
        let mut b = Vec::with_capacity(32);
        b.push(TOKEN_VERSION);
        match &self.original.subject {
            Subject::Beatle(x) => b.extend([0, *x as u8]),
            Subject::Person => b.push(1),
            Subject::Word(w) => {
                let w = &w.as_bytes()[..w.len().min(255)];
                b.extend([2, w.len() as u8]);
                b.extend_from_slice(w);
            }
            Subject::Group { beatles, people } => b.extend([3, *beatles, *people]),
            Subject::Corpus(g) => {
                b.push(4);
                b.extend(g.to_le_bytes());
            }
        }
        b.extend(self.original.index.to_le_bytes());
        b.push(
            VariantKind::ALL
                .iter()
                .position(|k| *k == self.variant.kind)
                .unwrap() as u8,
        );
        b.extend(self.variant.nonce.to_le_bytes());
        b.push(self.delivery.code());
        b.push(self.hops);
        b.extend(self.url_nonce.to_le_bytes());
        let mac = lennonnet_core::keyed_hash(MAC_CONTEXT, key, &[&b]);
        b.extend_from_slice(&mac[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(b)
    }

    /// Reads a token back; `None` when it is malformed or its MAC is not this world's.
    pub fn from_token(token: &str, key: &[u8; 32]) -> Option<Self> {
        let b = URL_SAFE_NO_PAD.decode(token).ok()?;
        if b.len() < MAC_LEN + 2 {
            return None;
        }
        let (body, mac) = b.split_at(b.len() - MAC_LEN);
        if lennonnet_core::keyed_hash(MAC_CONTEXT, key, &[body])[..MAC_LEN] != *mac {
            return None;
        }
        let mut r = Reader(body);
        if r.u8()? != TOKEN_VERSION {
            return None;
        }
        let subject = match r.u8()? {
            0 => Subject::Beatle(*Beatle::ALL.get(r.u8()? as usize)?),
            1 => Subject::Person,
            2 => {
                let n = r.u8()? as usize;
                Subject::Word(String::from_utf8(r.take(n)?.to_vec()).ok()?)
            }
            3 => Subject::Group {
                beatles: r.u8()?,
                people: r.u8()?,
            },
            4 => Subject::Corpus(u16::from_le_bytes(r.take(2)?.try_into().ok()?)),
            _ => return None,
        };
        let index = r.u32()?;
        let kind = *VariantKind::ALL.get(r.u8()? as usize)?;
        let nonce = r.u32()?;
        let delivery = *Delivery::ALL.get(r.u8()? as usize)?;
        let hops = r.u8()?;
        let url_nonce = r.u32()?;
        if !r.0.is_empty() {
            return None;
        }
        Some(Self {
            original: Original { subject, index },
            variant: Variant { kind, nonce },
            delivery,
            hops,
            url_nonce,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

/// An image file format the mirror writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    JpegBaseline,
    JpegProgressive,
    Png,
    Webp,
    Gif,
}

impl Format {
    pub fn mime(self) -> &'static str {
        match self {
            Format::JpegBaseline | Format::JpegProgressive => "image/jpeg",
            Format::Png => "image/png",
            Format::Webp => "image/webp",
            Format::Gif => "image/gif",
        }
    }

    pub fn ext(self) -> &'static str {
        match self {
            Format::JpegBaseline | Format::JpegProgressive => "jpg",
            Format::Png => "png",
            Format::Webp => "webp",
            Format::Gif => "gif",
        }
    }

    /// The word Bing shows under a result ("1200 x 800 · jpeg").
    pub fn short_name(self) -> &'static str {
        match self {
            Format::JpegBaseline | Format::JpegProgressive => "jpeg",
            Format::Png => "png",
            Format::Webp => "webp",
            Format::Gif => "gif",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_need_the_same_key() {
        let key = [7u8; 32];
        let specs = [
            ImageSpec {
                original: Original {
                    subject: Subject::Beatle(Beatle::George),
                    index: 12,
                },
                variant: Variant::ORIGINAL,
                delivery: Delivery::Ok,
                hops: 0,
                url_nonce: 99,
            },
            ImageSpec {
                original: Original {
                    subject: Subject::Word("tea pot".into()),
                    index: 400_000,
                },
                variant: Variant {
                    kind: VariantKind::Cropped,
                    nonce: u32::MAX,
                },
                delivery: Delivery::RedirectLoop,
                hops: 3,
                url_nonce: 1,
            },
            ImageSpec {
                original: Original {
                    subject: Subject::Group {
                        beatles: 0b11,
                        people: 2,
                    },
                    index: 0,
                },
                variant: Variant::ORIGINAL,
                delivery: Delivery::Huge,
                hops: 0,
                url_nonce: 0,
            },
            ImageSpec {
                original: Original {
                    subject: Subject::Corpus(300),
                    index: 5,
                },
                variant: Variant::ORIGINAL,
                delivery: Delivery::Ok,
                hops: 0,
                url_nonce: 0,
            },
        ];
        for spec in specs {
            let t = spec.token(&key);
            assert_eq!(ImageSpec::from_token(&t, &key), Some(spec.clone()), "{t}");
            assert_eq!(ImageSpec::from_token(&t, &[8u8; 32]), None);
            assert_eq!(ImageSpec::from_token(&t[1..], &key), None);
        }
        assert_eq!(ImageSpec::from_token("", &key), None);
        assert_eq!(ImageSpec::from_token("!!", &key), None);
    }
}

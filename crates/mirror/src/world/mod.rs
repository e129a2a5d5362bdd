//! The synthetic world: which pictures a query finds, in which order, under which URLs, with
//! which noise. Everything here is a pure function of the world's key (from the seed), the world
//! file and the request: no state, no clock.

mod look;
mod results;
mod urls;

use lennonnet_core::{EngineKind, keyed_hash};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::config::WorldConfig;
use crate::corpus::Corpus;
use crate::spec::{Beatle, Format, ImageSpec, Original, Subject, VariantKind};

pub use look::{Look, VariantParams, WATERMARKS};
pub use urls::{percent_encode, slugify};

/// How many image hosts there are: `img00.mirror.test` .. `img23.mirror.test`.
pub const IMAGE_HOSTS: u8 = 24;
/// The domain every virtual host of the mirror lives under.
pub const DOMAIN: &str = "mirror.test";

/// A seeded RNG for one decision, from a keyed blake3 hash of its context and parts.
pub fn rng_for(key: &[u8; 32], context: &str, parts: &[&[u8]]) -> ChaCha8Rng {
    ChaCha8Rng::from_seed(keyed_hash(context, key, parts))
}

/// What a query asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuerySubject {
    Beatle(Beatle),
    /// Group pictures of the four.
    Beatles,
    People,
    Word(String),
    Corpus(u16),
}

/// One search result before it is written in an engine's wire format.
#[derive(Debug, Clone)]
pub struct ResultItem {
    pub spec: ImageSpec,
    pub host: u8,
    pub title: String,
    pub site: &'static str,
    pub slug: String,
    pub look: Look,
}

/// Ground truth of one image URL.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Truth {
    pub url: String,
    /// `beatle`, `person`, `word`, `group` or `corpus`.
    pub kind: &'static str,
    /// `john`, `person-000123`, the word, `group`, or the corpus sub-folder.
    pub name: String,
    /// Everyone in the picture (empty for word scenes).
    pub identities: Vec<String>,
    /// The original picture: every copy of it shares this id.
    pub original: String,
    pub variant: VariantKind,
    pub noise: &'static str,
    pub format: Format,
    pub width: u32,
    pub height: u32,
    pub orientation: u8,
    /// Where `mirror generate` wrote the bytes, relative to its output folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The search that returned the URL, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
}

/// The world: settings, key and (in corpus mode) the real images.
pub struct World {
    pub config: WorldConfig,
    key: [u8; 32],
    pub corpus: Option<Corpus>,
}

impl World {
    pub fn new(config: WorldConfig, corpus: Option<Corpus>) -> Self {
        let fingerprint = corpus.as_ref().map(|c| c.fingerprint).unwrap_or([0; 32]);
        let key = keyed_hash(
            "lennonnet mirror world v1",
            &config.seed.to_le_bytes(),
            &[&fingerprint],
        );
        Self {
            config,
            key,
            corpus,
        }
    }

    pub fn seed(&self) -> u64 {
        self.config.seed
    }

    pub fn key(&self) -> &[u8; 32] {
        &self.key
    }

    /// Lowercase, words separated by single spaces.
    pub fn normalize(query: &str) -> String {
        query
            .to_lowercase()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// What a query asks for: the first `[[subject]]` rule with a phrase in the query; else
    /// random people when a word of the query is a people word; else a word scene.
    pub fn resolve(&self, query: &str) -> QuerySubject {
        let q = Self::normalize(query);
        for rule in &self.config.subjects {
            if rule.phrases.iter().any(|p| q.contains(&Self::normalize(p))) {
                if let Some(c) = &self.corpus {
                    if let Some(g) = c.group_index(&rule.identity) {
                        return QuerySubject::Corpus(g);
                    }
                    continue;
                }
                if rule.identity == "beatles" {
                    return QuerySubject::Beatles;
                }
                if let Some(b) = Beatle::from_name(&rule.identity) {
                    return QuerySubject::Beatle(b);
                }
            }
        }
        let words: Vec<String> = q
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect();
        if let Some(c) = &self.corpus {
            // A corpus folder named in the query ("red_car" matches "red car photo"), else a
            // folder chosen by the query's hash.
            for (i, name) in c.group_names().iter().enumerate() {
                if q.contains(&name.replace(['_', '-'], " ")) {
                    return QuerySubject::Corpus(i as u16);
                }
            }
            let h = keyed_hash(
                "lennonnet mirror corpus query v1",
                &self.key,
                &[q.as_bytes()],
            );
            return QuerySubject::Corpus((u64_of(&h) % c.groups.len() as u64) as u16);
        }
        if words.iter().any(|w| self.config.people_words.contains(w)) {
            return QuerySubject::People;
        }
        let kept: Vec<&str> = words
            .iter()
            .filter(|w| !self.config.stop_words.contains(w))
            .map(String::as_str)
            .collect();
        let word = if kept.is_empty() {
            words.join(" ")
        } else {
            kept.join(" ")
        };
        QuerySubject::Word(word)
    }

    /// How many results a query has on an engine, over all its pages.
    pub fn result_count(&self, engine: EngineKind, query: &str) -> u32 {
        let q = Self::normalize(query);
        if q.is_empty() {
            return 0;
        }
        let r = &self.config.results;
        let (lo, hi) = match engine {
            EngineKind::WikimediaCommons => (r.commons_min_results, r.commons_max_results),
            _ => (r.min_results, r.max_results),
        };
        let mut rng = rng_for(
            &self.key,
            "lennonnet mirror result count v1",
            &[engine.as_str().as_bytes(), q.as_bytes()],
        );
        if hi <= lo {
            hi
        } else {
            rng.random_range(lo..=hi)
        }
    }

    /// The ground truth of an image URL's spec.
    pub fn truth(&self, spec: &ImageSpec, url: String) -> Truth {
        let look = self.look(spec);
        let (kind, name, identities) = match &spec.original.subject {
            Subject::Beatle(b) => (
                "beatle",
                b.as_str().to_string(),
                vec![b.as_str().to_string()],
            ),
            Subject::Person => {
                let p = self.person_of(spec.original.index);
                ("person", person_name(p), vec![person_name(p)])
            }
            Subject::Word(w) => ("word", w.clone(), vec![]),
            Subject::Group { beatles, people } => {
                let mut ids: Vec<String> = Beatle::ALL
                    .iter()
                    .filter(|b| beatles & b.bit() != 0)
                    .map(|b| b.as_str().to_string())
                    .collect();
                ids.extend(
                    self.group_people(&spec.original, *people)
                        .into_iter()
                        .map(person_name),
                );
                ("group", "group".to_string(), ids)
            }
            Subject::Corpus(g) => {
                let name = self
                    .corpus
                    .as_ref()
                    .map(|c| c.groups[*g as usize].name.clone())
                    .unwrap_or_default();
                ("corpus", name.clone(), vec![name])
            }
        };
        Truth {
            url,
            kind,
            name,
            identities,
            original: original_id(&spec.original, self),
            variant: spec.variant.kind,
            noise: spec.delivery.as_str(),
            format: look.format,
            width: look.width,
            height: look.height,
            orientation: look.orientation,
            file: None,
            engine: None,
            query: None,
            rank: None,
        }
    }

    /// The random person an original of [`Subject::Person`] shows.
    pub fn person_of(&self, index: u32) -> u32 {
        index / self.config.results.pictures_per_person.max(1)
    }

    /// The random people in a group picture.
    pub fn group_people(&self, original: &Original, people: u8) -> Vec<u32> {
        let mut rng = self.original_rng(original, "group people");
        (0..people)
            .map(|_| rng.random_range(0..self.config.results.people_pool))
            .collect()
    }
}

/// The stable id of an original picture, as truth reports it.
pub fn original_id(o: &Original, world: &World) -> String {
    match &o.subject {
        Subject::Beatle(b) => format!("{}-{:05}", b.as_str(), o.index),
        Subject::Person => format!(
            "{}-{}",
            person_name(world.person_of(o.index)),
            o.index % world.config.results.pictures_per_person.max(1)
        ),
        Subject::Word(w) => format!("word-{}-{:05}", w.replace(' ', "_"), o.index),
        Subject::Group { beatles, people } => {
            let mut s = String::from("group-");
            for b in Beatle::ALL {
                if beatles & b.bit() != 0 {
                    s.push(b.as_str().chars().next().unwrap());
                }
            }
            if *people > 0 {
                s += &format!("+{people}");
            }
            format!("{s}-{:05}", o.index)
        }
        Subject::Corpus(g) => match &world.corpus {
            Some(c) => format!(
                "corpus-{}-{}",
                c.groups[*g as usize].name,
                c.file(*g, o.index).name
            ),
            None => format!("corpus-{g}-{}", o.index),
        },
    }
}

fn person_name(p: u32) -> String {
    format!("person-{p:06}")
}

pub(crate) fn u64_of(h: &[u8; 32]) -> u64 {
    u64::from_le_bytes(h[..8].try_into().unwrap())
}

//! Search results: which original a result slot shows, which copy, how its URL answers, on
//! which host and site, under which title.

use lennonnet_core::{EngineKind, keyed_hash};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{IMAGE_HOSTS, QuerySubject, ResultItem, World, rng_for, slugify, u64_of};
use crate::spec::{Beatle, Delivery, ImageSpec, Original, Subject, Variant, VariantKind};

const SITES: [&str; 32] = [
    "rockarchive",
    "beatbible",
    "musicdaily",
    "vintagephotos",
    "stockpix",
    "picturehub",
    "wallpaperz",
    "pinboard",
    "fanforum",
    "newsdaily",
    "historyhub",
    "celebnest",
    "photoblog",
    "imgshare",
    "retromag",
    "popculture",
    "gettyish",
    "alamode",
    "flickery",
    "tumblog",
    "wikiwand",
    "quotespics",
    "biography",
    "rollingrock",
    "nme-archive",
    "artprints",
    "postershop",
    "travelsnaps",
    "kitchenpro",
    "hobbyworld",
    "naturepics",
    "dailyfacts",
];

impl World {
    /// The result at 0-based `rank` of `query` on `engine`. Callers keep `rank` below
    /// [`World::result_count`].
    pub fn result(&self, engine: EngineKind, query: &str, rank: u32) -> ResultItem {
        let q = Self::normalize(query);
        let qs = self.resolve(&q);
        let mut rng = rng_for(
            &self.key,
            "lennonnet mirror slot v1",
            &[
                engine.as_str().as_bytes(),
                q.as_bytes(),
                &rank.to_le_bytes(),
            ],
        );
        let subject = self.slot_subject(&qs, &mut rng);
        let index = self.slot_index(&subject, &q, &mut rng);
        let original = Original { subject, index };
        let variant = self.slot_variant(&mut rng);
        let (delivery, hops) = self.slot_delivery(&mut rng);
        let spec = ImageSpec {
            original,
            variant,
            delivery,
            hops,
            url_nonce: rng.random(),
        };
        let x: f64 = rng.random();
        let host = ((x.powf(1.6) * IMAGE_HOSTS as f64) as u8).min(IMAGE_HOSTS - 1);
        let site = SITES[rng.random_range(0..SITES.len())];
        let title = self.title(&qs, &spec.original, engine, &mut rng, site);
        let slug = slugify(&title);
        let look = self.look(&spec);
        ResultItem {
            spec,
            host,
            title,
            site,
            slug,
            look,
        }
    }

    /// Who a result slot shows: mostly what the query asks for, sometimes the noise of the
    /// world file (another Beatle, a group, John among strangers, the intruder's folder).
    fn slot_subject(&self, qs: &QuerySubject, rng: &mut ChaCha8Rng) -> Subject {
        let n = &self.config.noise;
        let u: f64 = rng.random();
        let others = |rng: &mut ChaCha8Rng, not: Beatle| loop {
            let b = Beatle::ALL[rng.random_range(0..4)];
            if b != not {
                break b;
            }
        };
        match qs {
            QuerySubject::Beatle(Beatle::John) => {
                if u < n.other_in_john {
                    Subject::Beatle(others(rng, Beatle::John))
                } else if u < n.other_in_john + n.group_in_john {
                    let mut mask = Beatle::John.bit() | others(rng, Beatle::John).bit();
                    if rng.random_bool(0.4) {
                        mask |= others(rng, Beatle::John).bit();
                    }
                    Subject::Group {
                        beatles: mask,
                        people: 0,
                    }
                } else {
                    Subject::Beatle(Beatle::John)
                }
            }
            QuerySubject::Beatle(b) => {
                if u < n.john_in_others {
                    Subject::Beatle(Beatle::John)
                } else if u < n.john_in_others + n.group_in_others {
                    let mut mask = b.bit() | Beatle::John.bit();
                    if rng.random_bool(0.4) {
                        mask |= others(rng, *b).bit();
                    }
                    Subject::Group {
                        beatles: mask,
                        people: 0,
                    }
                } else {
                    Subject::Beatle(*b)
                }
            }
            QuerySubject::Beatles => {
                let mut mask = 0b1111;
                if rng.random_bool(0.3) {
                    mask &= !Beatle::ALL[rng.random_range(0..4)].bit();
                }
                Subject::Group {
                    beatles: mask,
                    people: 0,
                }
            }
            QuerySubject::People => {
                if u < n.john_in_people {
                    Subject::Beatle(Beatle::John)
                } else if u < n.john_in_people + n.group_in_people {
                    Subject::Group {
                        beatles: Beatle::John.bit(),
                        people: rng.random_range(1..=3),
                    }
                } else {
                    Subject::Person
                }
            }
            QuerySubject::Word(w) => Subject::Word(w.clone()),
            QuerySubject::Corpus(g) => {
                // In corpus mode the intruder is the first rule's folder (John's, by default).
                let intruder = self.corpus.as_ref().and_then(|c| {
                    self.config
                        .subjects
                        .iter()
                        .find_map(|rule| c.group_index(&rule.identity))
                });
                match intruder {
                    Some(i) if i != *g && u < n.john_in_others + n.group_in_others => {
                        Subject::Corpus(i)
                    }
                    _ => Subject::Corpus(*g),
                }
            }
        }
    }

    /// Which original of the subject's pool a slot shows: a popular one, or one of the query's
    /// window.
    fn slot_index(&self, subject: &Subject, q: &str, rng: &mut ChaCha8Rng) -> u32 {
        let r = &self.config.results;
        let pool = self.pool_size(subject);
        let query_offset = u64_of(&keyed_hash(
            "lennonnet mirror query window v1",
            &self.key,
            &[q.as_bytes()],
        ));
        if rng.random_bool(r.popular_share) {
            let x: f64 = rng.random();
            ((x * x * r.popular_size as f64) as u32).min(pool - 1)
        } else {
            let window = r.query_window.min(pool).max(1);
            ((query_offset + rng.random_range(0..window) as u64) % pool as u64) as u32
        }
    }

    /// The copy a slot serves: the original, or a variant by the world file's rates.
    fn slot_variant(&self, rng: &mut ChaCha8Rng) -> Variant {
        let n = &self.config.noise;
        let u: f64 = rng.random();
        let mut acc = 0.0;
        let mut kind = VariantKind::Original;
        for (k, rate) in n.variant_rates() {
            acc += rate;
            if u < acc {
                kind = k;
                break;
            }
        }
        match kind {
            VariantKind::Original => Variant::ORIGINAL,
            kind => Variant {
                kind,
                nonce: rng.random::<u32>() | 1,
            },
        }
    }

    /// How a slot's URL answers, and the hops of a redirect chain.
    fn slot_delivery(&self, rng: &mut ChaCha8Rng) -> (Delivery, u8) {
        let n = &self.config.noise;
        let u: f64 = rng.random();
        let mut acc = 0.0;
        let mut delivery = Delivery::Ok;
        for (d, rate) in n.delivery_rates() {
            acc += rate;
            if u < acc {
                delivery = d;
                break;
            }
        }
        let hops = match delivery {
            Delivery::RedirectChain => {
                rng.random_range(1..=self.config.timing.max_redirects.clamp(1, 200)) as u8
            }
            _ => 0,
        };
        (delivery, hops)
    }

    fn pool_size(&self, subject: &Subject) -> u32 {
        let r = &self.config.results;
        match subject {
            Subject::Beatle(_) | Subject::Group { .. } => r.identity_pool,
            Subject::Person => r.people_pool.saturating_mul(r.pictures_per_person),
            Subject::Word(_) => r.word_pool,
            Subject::Corpus(g) => self
                .corpus
                .as_ref()
                .map(|c| c.groups[*g as usize].files.len() as u32)
                .unwrap_or(1)
                .max(1),
        }
    }

    fn title(
        &self,
        qs: &QuerySubject,
        original: &Original,
        engine: EngineKind,
        rng: &mut ChaCha8Rng,
        site: &str,
    ) -> String {
        let year = 1958 + (self.era(original) * 22.0) as u32;
        let site_name = title_case(site);
        let pick = |rng: &mut ChaCha8Rng, t: &[&str]| t[rng.random_range(0..t.len())].to_string();
        let (name, templates): (String, &[&str]) = match qs {
            QuerySubject::Beatle(b) => (
                b.full_name().to_string(),
                &[
                    "{name} in {year} | {site}",
                    "{name} ({year}) — rare photo",
                    "{name} portrait, {year}",
                    "{name} - Wikipedia",
                    "Photo… {name} backstage, {year}",
                    "{name}: Biography, Songs & Facts | {site}",
                    "{name} HD wallpaper",
                    "The life of {name} in pictures",
                ],
            ),
            QuerySubject::Beatles => (
                "The Beatles".to_string(),
                &[
                    "{name} in {year} | {site}",
                    "{name} arrive in New York, {year}",
                    "{name} — band photo",
                    "{name} on stage ({year})",
                ],
            ),
            QuerySubject::People => (
                pick(rng, &["man", "woman", "person", "young man", "older woman"]),
                &[
                    "Portrait of a {name} — stock photo",
                    "Close-up face of a {name} | {site}",
                    "Smiling {name} headshot",
                    "{name} portrait in natural light",
                    "Candid photo of a {name}",
                ],
            ),
            QuerySubject::Word(w) => (
                w.clone(),
                &[
                    "{Name} - free stock photo | {site}",
                    "Beautiful {name} pictures",
                    "{Name} HD wallpaper",
                    "How to choose a {name} — {site}",
                    "{Name} (café edition)",
                    "{Name} images & photos",
                ],
            ),
            QuerySubject::Corpus(g) => (
                self.corpus
                    .as_ref()
                    .map(|c| c.groups[*g as usize].name.replace('_', " "))
                    .unwrap_or_default(),
                &["{name} | {site}", "{Name} photo", "{Name} — picture"],
            ),
        };
        let t = pick(rng, templates);
        let mut title = t
            .replace("{name}", &name)
            .replace("{Name}", &title_case(&name))
            .replace("{year}", &year.to_string())
            .replace("{site}", &site_name);
        if engine == EngineKind::WikimediaCommons {
            title = title.replace(['|', ':', '—', '…'], "-");
        }
        title
    }
}

fn title_case(s: &str) -> String {
    s.split(' ')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

//! `curate --explain`: the story of one image.

use std::fmt::Write;

use lennonnet_core::ContentId;
use lennonnet_store::{Decision, ImageMeta, LabelReview, Provenance, Rejection, Store, UrlState};
use serde::Serialize;

use crate::CurateError;

/// Everything the store knows of one content id.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub id: ContentId,
    pub object_path: String,
    pub object_present: bool,
    /// Set when accepted.
    pub meta: Option<ImageMeta>,
    /// Set when refused.
    pub rejection: Option<Rejection>,
    pub provenance: Vec<Provenance>,
    /// The last fetch and ingest outcome of each URL the image came from.
    pub urls: Vec<(String, UrlState)>,
    /// The decision in force, then every decision oldest first.
    pub decision: Option<Decision>,
    pub history: Vec<Decision>,
    /// The other members of its cluster.
    pub cluster: Vec<ClusterMember>,
    /// Every label review of the image (clears included), oldest first; the latest is in force
    /// unless it is a clear.
    pub reviews: Vec<LabelReview>,
}

/// A cluster member, and how far its hashes are from the explained image's.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterMember {
    pub id: ContentId,
    pub phash_distance: Option<u32>,
    pub pdq_distance: Option<u32>,
    pub status: Option<String>,
    pub label: Option<String>,
    pub groups: Vec<String>,
}

/// Gathers the story of `id`.
pub fn explain(store: &Store, id: &ContentId) -> Result<Explanation, CurateError> {
    let meta = store.meta(id)?;
    let rejection = store.rejection(id)?;
    let provenance = store.provenance(id)?;
    let mut urls = Vec::new();
    for p in &provenance {
        if urls
            .iter()
            .any(|(u, _): &(String, UrlState)| u == &p.image_url)
        {
            continue;
        }
        if let Some(s) = store.url_state(&p.image_url)? {
            urls.push((p.image_url.clone(), s));
        }
    }
    let decision = store.decision(id)?;
    let history = store.decision_history(id)?;
    let mut cluster = Vec::new();
    if let Some(d) = &decision {
        for m in store.cluster_members(&d.cluster)? {
            if m == *id {
                continue;
            }
            let mm = store.meta(&m)?;
            let md = store.decision(&m)?;
            let (pd, qd) = match (&meta, &mm) {
                (Some(a), Some(b)) => (
                    Some(a.phash.distance(&b.phash)),
                    Some(a.pdq.distance(&b.pdq)),
                ),
                _ => (None, None),
            };
            cluster.push(ClusterMember {
                id: m,
                phash_distance: pd,
                pdq_distance: qd,
                status: md.as_ref().map(|d| d.status.to_string()),
                label: md.as_ref().map(|d| d.label.to_string()),
                groups: md
                    .map(|d| d.groups.iter().map(|g| g.to_string()).collect())
                    .unwrap_or_default(),
            });
        }
    }
    let reviews = store.label_review_history(id)?;
    let path = store.object_path(id);
    Ok(Explanation {
        id: *id,
        object_present: path.is_file(),
        object_path: path.display().to_string(),
        meta,
        rejection,
        provenance,
        urls,
        decision,
        history,
        cluster,
        reviews,
    })
}

impl Explanation {
    /// The story as text for people.
    pub fn render(&self) -> String {
        let mut s = String::new();
        self.render_image(&mut s);
        self.render_provenance(&mut s);
        self.render_fetches(&mut s);
        match &self.decision {
            None => {
                let _ = writeln!(s, "\nnot curated yet (run `lennonnet curate`)");
            }
            Some(d) => self.render_decision(&mut s, d),
        }
        self.render_reviews(&mut s);
        s
    }

    /// Who reviewed the image's label, when, and what they decided.
    fn render_reviews(&self, s: &mut String) {
        let Some(latest) = self.reviews.last() else {
            return;
        };
        let in_force = if latest.in_force() {
            format!("in force: {}", latest.action)
        } else {
            "none in force".to_string()
        };
        let _ = writeln!(
            s,
            "\nlabel reviews: {} ({in_force}), oldest first",
            self.reviews.len()
        );
        for r in &self.reviews {
            let _ = writeln!(
                s,
                "  {}  {}: {} (label was {}){}",
                r.at,
                r.reviewer,
                r.action,
                r.old_label,
                r.run
                    .as_ref()
                    .map(|run| format!(", suspects of run {run}"))
                    .unwrap_or_default()
            );
        }
    }

    /// The object, and what ingesting it found.
    fn render_image(&self, s: &mut String) {
        let _ = writeln!(s, "image {}", self.id);
        let _ = writeln!(
            s,
            "  object   {} ({})",
            self.object_path,
            if self.object_present {
                "present"
            } else {
                "absent"
            }
        );
        match (&self.meta, &self.rejection) {
            (Some(m), _) => {
                let _ = writeln!(
                    s,
                    "  accepted {} {}x{} stored, orientation {}, {}x{} upright, {}{}{}, {} bytes",
                    m.format,
                    m.width,
                    m.height,
                    m.orientation,
                    m.oriented_width,
                    m.oriented_height,
                    m.color,
                    if m.has_alpha { ", alpha" } else { "" },
                    if m.animated {
                        ", animated (first frame used)"
                    } else {
                        ""
                    },
                    m.bytes
                );
                let _ = writeln!(
                    s,
                    "  hashes   phash {}  pdq {}  quality {}",
                    m.phash, m.pdq, m.pdq_quality
                );
            }
            (None, Some(r)) => {
                let _ = writeln!(s, "  rejected {} at {}: {}", r.reason, r.at, r.detail);
            }
            (None, None) => {
                let _ = writeln!(s, "  never ingested");
            }
        }
    }

    /// Where the image was found.
    fn render_provenance(&self, s: &mut String) {
        let _ = writeln!(s, "\nfound {} time(s)", self.provenance.len());
        for p in &self.provenance {
            let _ = writeln!(
                s,
                "  - group {} (label {}, {}) at {}",
                p.group, p.label, p.purpose, p.fetched_at
            );
            let mut line = String::from("    ");
            if let Some(e) = p.engine {
                let _ = write!(line, "{e}");
            }
            if let Some(q) = &p.query_text {
                let _ = write!(line, " query {q:?}");
            }
            if let Some(r) = p.rank {
                let _ = write!(line, " rank {r}");
            }
            if let Some(q) = &p.query_id {
                let _ = write!(line, " ({q})");
            }
            if !line.trim().is_empty() {
                let _ = writeln!(s, "{line}");
            }
            let _ = writeln!(s, "    image {}", p.image_url);
            if let Some(u) = &p.page_url {
                let _ = writeln!(s, "    page  {u}");
            }
            if let Some(t) = &p.title {
                let _ = writeln!(s, "    title {t:?}");
            }
            if let Some(l) = &p.licence {
                let parts: Vec<&str> = [&l.short_name, &l.artist, &l.url]
                    .into_iter()
                    .flatten()
                    .map(String::as_str)
                    .collect();
                let _ = writeln!(s, "    licence {}", parts.join(", "));
            }
        }
    }

    /// The last download of each of its URLs.
    fn render_fetches(&self, s: &mut String) {
        for (url, st) in &self.urls {
            if let Some(f) = &st.fetch {
                let _ = writeln!(
                    s,
                    "  fetch {url}: {} (status {}, {} bytes, {} ms, at {})",
                    f.reason.map_or("ok", lennonnet_core::FailureReason::as_str),
                    f.status.map_or("-".into(), |v| v.to_string()),
                    f.bytes.map_or("-".into(), |v| v.to_string()),
                    f.duration_ms,
                    f.at
                );
            }
        }
    }

    /// The decision in force, its cluster and the decisions before it.
    fn render_decision(&self, s: &mut String, d: &Decision) {
        let _ = writeln!(
            s,
            "\ncuration: {} as {} (decided {})",
            d.status, d.label, d.at
        );
        let _ = writeln!(
            s,
            "  cluster {} of {} image(s){}",
            d.cluster,
            d.cluster_size,
            if d.cluster == self.id {
                ", represented by this image"
            } else {
                ""
            }
        );
        let groups: Vec<String> = d.groups.iter().map(|g| g.to_string()).collect();
        let _ = writeln!(s, "  groups  {}", groups.join(", "));
        for r in &d.reasons {
            let _ = writeln!(s, "  - {}: {}", r.code, r.detail);
        }
        for m in &self.cluster {
            let _ = writeln!(
                s,
                "  member {}  phash {}  pdq {}  {} {} [{}]",
                m.id,
                m.phash_distance.map_or("-".into(), |v| v.to_string()),
                m.pdq_distance.map_or("-".into(), |v| v.to_string()),
                m.status.as_deref().unwrap_or("-"),
                m.label.as_deref().unwrap_or("-"),
                m.groups.join(", ")
            );
        }
        if self.history.len() > 1 {
            let _ = writeln!(
                s,
                "  history ({} decisions, oldest first)",
                self.history.len()
            );
            for h in &self.history {
                let codes: Vec<String> = h.reasons.iter().map(|r| r.code.to_string()).collect();
                let _ = writeln!(
                    s,
                    "    {}  {} as {}, cluster of {} [{}]",
                    h.at,
                    h.status,
                    h.label,
                    h.cluster_size,
                    codes.join(", ")
                );
            }
        }
    }
}

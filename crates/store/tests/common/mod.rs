#![allow(dead_code)]

pub mod files;
pub mod synth;

use lennonnet_core::{Group, Label, Purpose};
use lennonnet_store::{Provenance, Timestamp};

pub fn prov(url: &str, group: &str, label: &str) -> Provenance {
    Provenance {
        group: Group::new(group).unwrap(),
        label: Label::new(label).unwrap(),
        purpose: Purpose::Train,
        image_url: url.to_string(),
        query_id: None,
        query_text: Some(format!("{group} query")),
        engine: Some(lennonnet_core::EngineKind::Bing),
        rank: Some(1),
        page_url: Some(format!("{url}.html")),
        title: Some("a title".into()),
        licence: None,
        thumbnail_of: None,
        fetched_at: Timestamp(1_764_346_980_123),
    }
}

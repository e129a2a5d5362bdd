//! Bing: the `images/async` HTML.

use lennonnet_core::{EngineKind, keyed_hash};
use rand::Rng;
use serde::Serialize;

use super::{html_escape, page};
use crate::world::{DOMAIN, ResultItem, World, percent_encode, rng_for};

/// Most results Bing gives for one `images/async` request.
pub const BING_MAX_COUNT: u32 = 150;

#[derive(Serialize)]
struct BingM<'a> {
    sid: &'a str,
    cturl: &'a str,
    cid: &'a str,
    purl: &'a str,
    murl: &'a str,
    turl: &'a str,
    md5: &'a str,
    shkey: &'a str,
    t: &'a str,
    mid: &'a str,
    desc: &'a str,
}

/// The `images/async` HTML: one `a.iusc` per result with its `m` attribute holding HTML-escaped
/// JSON, results `first` (1-based) to `first + count - 1`. Past the last result, a list with no
/// results.
pub fn bing_async(
    world: &World,
    port: u16,
    query: &str,
    first: u32,
    count: u32,
) -> (String, Vec<ResultItem>) {
    let start = first.max(1) - 1;
    let items = page(
        world,
        EngineKind::Bing,
        query,
        start,
        count.clamp(1, BING_MAX_COUNT),
    );
    let q_plus = percent_encode(query).replace("%20", "+");
    let mut html = String::with_capacity(items.len() * 2200 + 512);
    html += r#"<div id="mmComponent_images_2" class="mmComponent_images" data-nextfirst=""#;
    html += &(start + items.len() as u32 + 1).to_string();
    html += r#""><ul class="dgControl_list " data-row="0">"#;
    for (i, it) in items.iter().enumerate() {
        let rank = start + i as u32;
        if i > 0 && i % 7 == 0 {
            html += &format!(r#"</ul><ul class="dgControl_list " data-row="{}">"#, i / 7);
        }
        let h = keyed_hash(
            "lennonnet mirror bing ids v1",
            world.key(),
            &[query.as_bytes(), &rank.to_le_bytes()],
        );
        let hex = blake3::Hash::from_bytes(h).to_hex();
        let cid = &hex[..8];
        let md5 = &hex[8..40];
        let mid = hex[40..64].to_uppercase();
        let murl = world.image_url(it, port);
        let turl = world.thumbnail_url(it, port);
        let purl = world.page_url(it, port);
        let m = serde_json::to_string(&BingM {
            sid: "",
            cturl: "",
            cid,
            purl: &purl,
            murl: &murl,
            turl: &turl,
            md5,
            shkey: "",
            t: &it.title,
            mid: &mid,
            desc: "",
        })
        .expect("plain data serialises");
        let mut rng = rng_for(world.key(), "lennonnet mirror bing box v1", &[&h]);
        let th = 180u32;
        let tw = (th * it.look.width / it.look.height.max(1)).clamp(90, 400);
        let bg = format!(
            "#{:02x}{:02x}{:02x}",
            rng.random::<u8>() / 2 + 40,
            rng.random::<u8>() / 2 + 40,
            rng.random::<u8>() / 2 + 40
        );
        let detail = format!(
            "/images/search?view=detailV2&ccid={cid}&id={mid}&thid=OIP.{cid}&mediaurl={}&exph={}&expw={}&q={q_plus}&simid={}&FORM=IRPRST&ck={md5}&selectedIndex={rank}&itb=0",
            percent_encode(&murl).to_lowercase(),
            it.look.height,
            it.look.width,
            u64::from_le_bytes(h[..8].try_into().unwrap()) % 1_000_000_000_000_000
        );
        let site = format!("www.{}.{DOMAIN}", it.site);
        let title = html_escape(&it.title);
        html += &format!(
            concat!(
                r#"<li data-idx="{idx}"><div class="iuscp isv" data-tag="{cid}"><div class="imgpt">"#,
                r#"<a class="iusc" style="height:{th}px;width:{tw}px" m="{m}" mad="{mad}" href="{detail}" h="ID=images.5061.1,5102.1">"#,
                r#"<div class="img_cont hoff"><img class="mimg" style="background-color:{bg};color:{bg}" height="{th}" width="{tw}" src="{turl}" alt="{title}"/></div></a>"#,
                r#"<div class="img_info hon"><span class="nowrap">{w} x {h} · {fmt}</span><div class="lnkw"><a target="_blank" href="{purl}" h="ID=images,5013.1" tabindex="-1" aria-hidden="true">{site}</a></div></div></div>"#,
                r#"<div class="infnmpt"><div class="infopt"><a class="inflnk" aria-label="Image result for {qa}" href="{detail}" h="ID=images,5014.1">{title}</a>"#,
                r#"<ul class="b_dataList"><li class="b_lin">{site}</li></ul></div></div></div></li>"#
            ),
            idx = rank + 1,
            cid = cid,
            th = th,
            tw = tw,
            m = html_escape(&m),
            mad = html_escape(&format!(
                r#"{{"turl":"{turl}","maw":"{tw}","mah":"{th}","mid":"{mid}"}}"#
            )),
            detail = html_escape(&detail),
            bg = bg,
            turl = html_escape(&turl),
            title = title,
            w = it.look.width,
            h = it.look.height,
            fmt = it.look.format.short_name(),
            purl = html_escape(&purl),
            site = site,
            qa = html_escape(query),
        );
    }
    html += "</ul></div>";
    (html, items)
}

/// The 0-based start of Bing's last non-empty page of `count` results (pages counted from the
/// first result: 0, `count`, 2 `count`, ...): what Bing answers again when asked past its end
/// (`bing_repeat_last_page`). `None` when `first` (1-based) is not past the end or the query has
/// no results.
pub fn bing_last_page_start(world: &World, query: &str, first: u32, count: u32) -> Option<u32> {
    let total = world.result_count(EngineKind::Bing, query);
    let start = first.max(1) - 1;
    let count = count.clamp(1, BING_MAX_COUNT);
    (start >= total && total > 0).then(|| (total - 1) / count * count)
}

/// `images/async` in a "changed format": well-formed HTML whose results are not `a.iusc`
/// anchors and that has no results list and no "no results" text, so an adapter can only say
/// the format changed.
pub fn bing_changed_html(world: &World, port: u16, query: &str, first: u32, count: u32) -> String {
    let start = first.max(1) - 1;
    let items = page(
        world,
        EngineKind::Bing,
        query,
        start,
        count.clamp(1, BING_MAX_COUNT),
    );
    let mut html = format!(
        r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>{} - Images</title></head><body><main class="gx-grid" data-version="2">"#,
        html_escape(query)
    );
    for it in &items {
        let payload = serde_json::json!({
            "media": world.image_url(it, port),
            "preview": world.thumbnail_url(it, port),
            "host": world.page_url(it, port),
            "label": it.title,
        })
        .to_string();
        html += &format!(
            r#"<figure class="gx-tile" data-payload="{}"><img src="{}" alt="{}"/></figure>"#,
            html_escape(&payload),
            html_escape(&world.thumbnail_url(it, port)),
            html_escape(&it.title)
        );
    }
    html += "</main></body></html>";
    html
}

//! Checks made before requests go to the real engines: the User-Agent Wikimedia Commons is sent.

use std::path::Path;

use lennonnet_core::EngineKind;

use crate::error::{ConfigError, PathPart as P, key_error};
use crate::schema::Config;

/// The Wikimedia User-Agent policy, as named in errors.
pub const WIKIMEDIA_UA_POLICY: &str = "Wikimedia's User-Agent policy (https://foundation.wikimedia.org/wiki/Policy:Wikimedia_Foundation_User-Agent_Policy, enforced since July 2025: clients without one are rate-limited, then blocked)";

/// Checks made before requests go to the real engines (`scrape`, `search`, `engines check`),
/// not when a config is only read: the User-Agent sent to the real Wikimedia Commons must name
/// the tool and a real contact (an e-mail address or a URL that is not a placeholder such as
/// `example.invalid`), when the plan uses Commons.
pub(crate) fn check_for_requests(c: &Config, src: &str, file: &Path) -> Result<(), ConfigError> {
    let commons = EngineKind::WikimediaCommons;
    let used = c.engines.order.contains(&commons)
        || c.groups
            .iter()
            .any(|g| g.engines.as_ref().is_some_and(|e| e.contains(&commons)))
        || c.words
            .as_ref()
            .and_then(|w| w.engines.as_ref())
            .is_some_and(|e| e.contains(&commons));
    let settings = c.engines.settings(commons, &c.http);
    if !used || !settings.is_real {
        return Ok(());
    }
    let path: Vec<P<'_>> = if c.engines.wikimedia_commons.user_agent.is_some() {
        vec![
            P::Key("engines"),
            P::Key("wikimedia_commons"),
            P::Key("user_agent"),
        ]
    } else {
        vec![P::Key("http"), P::Key("user_agent")]
    };
    match user_agent_contact(&settings.user_agent) {
        Contact::Real => Ok(()),
        found => Err(key_error(
            src,
            file,
            &path,
            format!(
                "{WIKIMEDIA_UA_POLICY} requires the User-Agent sent to commons.wikimedia.org to name the tool and a real contact (your e-mail address or a URL where you can be reached); {found}. Put your contact in, or take wikimedia_commons out of the engines this plan uses"
            ),
        )),
    }
}

/// What a User-Agent says about how to reach its operator.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Contact {
    Real,
    Missing,
    Placeholder(String),
}

impl std::fmt::Display for Contact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Contact::Real => f.write_str("it names a contact"),
            Contact::Missing => f.write_str("it names no e-mail address or URL"),
            Contact::Placeholder(host) => write!(f, "its contact is the placeholder {host:?}"),
        }
    }
}

/// Reads the contact out of a User-Agent: an e-mail address, or an `http(s)://` URL (with or
/// without a leading `+`, as in `+https://…`). Placeholders (`example.*` and `*.invalid`,
/// `*.test`, `*.example`, `localhost`) do not count.
pub(crate) fn user_agent_contact(ua: &str) -> Contact {
    let mut placeholder = None;
    let words =
        ua.split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ';' | ',' | '<' | '>'));
    for word in words {
        let word = word.trim_start_matches('+');
        let host = if let Some(rest) = word
            .strip_prefix("https://")
            .or_else(|| word.strip_prefix("http://"))
        {
            rest.split(['/', ':', '?', '#']).next().unwrap_or("")
        } else if let Some((user, domain)) = word.split_once('@') {
            if user.is_empty() || !domain.contains('.') {
                continue;
            }
            domain
        } else {
            continue;
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() || !host.contains('.') && host != "localhost" {
            continue;
        }
        let fake = host == "localhost"
            || host.starts_with("example.")
            || [".invalid", ".test", ".example", ".localhost"]
                .iter()
                .any(|s| host.ends_with(s))
            || host.ends_with(".example.com")
            || host.ends_with(".example.org")
            || host.ends_with(".example.net");
        if fake {
            placeholder.get_or_insert(host);
        } else {
            return Contact::Real;
        }
    }
    placeholder.map_or(Contact::Missing, Contact::Placeholder)
}

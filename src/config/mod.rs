//! The configuration: raw TOML (serde, unknown keys refused) validated into a
//! [`Config`] whose parts are checked types.
//!
//! Every problem found is reported with the file, the line and the key, and what
//! to write instead, as `dnsreg check` prints them; validation collects all of
//! them rather than stopping at the first. Past this module nothing re-checks
//! strings: names are templates known to expand to valid DNS names, durations
//! are durations.
//! The same validation serves a configuration built from command-line flags.
//!
//! The parts: `crate::model` holds the validated types and the errors (a
//! module of its own, re-exported here); `raw` the
//! TOML as read, with its spans; `checker` the collector of problems;
//! `settings`, `providers` and `records` check their tables; `validate` puts
//! them together and checks what only the whole configuration can tell; `flags`
//! builds the raw tables from command-line flags. The entry points that read
//! and validate a file are here.

mod checker;
mod flags;
mod mdns;
mod providers;
mod raw;
mod records;
mod settings;
mod validate;

use std::path::Path;

pub use crate::model::*;
pub use checker::MAX_DURATION;
pub use flags::{Flags, from_flags, instance_from_flags};
pub use mdns::mdns_notes;
pub use providers::plausible_hosted_zone_id;
pub use validate::{fleet_notes, validate};

use checker::Checker;
use raw::parse_raw;
use settings::validate_instance;

// ---------------------------------------------------------------------------
// Loading and validation
// ---------------------------------------------------------------------------

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let (source_name, text) = read(
        path,
        "; write a configuration there, point -c at one, or give the settings as flags (--provider, --zone, ...)",
    )?;
    parse(&source_name, &text)
}

/// The file's name as problems name it, and its text; a file that cannot be
/// read is one problem, its message followed by `hint`.
fn read(path: &Path, hint: &str) -> Result<(String, String), ConfigError> {
    let source_name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        source_name: source_name.clone(),
        problems: vec![Problem {
            line: None,
            key: String::new(),
            message: format!("cannot read it: {e}{hint}"),
        }],
    })?;
    Ok((source_name, text))
}

/// Reads a configuration file for its `[instance]` table alone (`whoami`):
/// the file must parse, but providers and records need not be there or be
/// right, since nothing is published.
pub fn load_instance(path: &Path) -> Result<InstanceConfig, ConfigError> {
    let (source_name, text) = read(path, "")?;
    let mut raw = parse_raw(&source_name, &text)?;
    let mut c = Checker {
        text: Some(&text),
        problems: Vec::new(),
    };
    let instance = validate_instance(&mut c, raw.instance.take().unwrap_or_default());
    if c.problems.is_empty() {
        Ok(instance)
    } else {
        Err(ConfigError {
            source_name,
            problems: c.problems,
        })
    }
}

/// Parses and validates configuration text; `source_name` is used in messages.
pub fn parse(source_name: &str, text: &str) -> Result<Config, ConfigError> {
    validate(source_name, Some(text), parse_raw(source_name, text)?)
}

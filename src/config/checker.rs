//! The collector of problems that every part of validation reports to.

use std::ops::Range;
use std::time::Duration;

use super::raw::{S, line_of};
use crate::model::{Problem, Template};

/// The longest duration any setting takes: far beyond any sensible value,
/// and far from the arithmetic overflows (deadlines, lease expiry) of huge ones.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Collects problems with their lines while validating.
pub(super) struct Checker<'a> {
    pub(super) text: Option<&'a str>,
    pub(super) problems: Vec<Problem>,
}

impl Checker<'_> {
    pub(super) fn line(&self, span: Range<usize>) -> Option<usize> {
        self.text.map(|t| line_of(t, span.start))
    }

    pub(super) fn problem(
        &mut self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        let line = self.line(span);
        self.problems.push(Problem {
            line,
            key: key.into(),
            message: message.into(),
        });
    }

    pub(super) fn u32_in<T: TryFrom<i64>>(
        &mut self,
        v: &S<i64>,
        key: &str,
        lo: i64,
        hi: i64,
    ) -> Option<T> {
        let n = *v.get_ref();
        if n < lo || n > hi {
            self.problem(
                v.span(),
                key,
                format!("{n} is out of range; write a whole number from {lo} to {hi}"),
            );
            return None;
        }
        T::try_from(n).ok()
    }

    pub(super) fn duration(
        &mut self,
        v: &Option<S<String>>,
        key: &str,
        default: Duration,
    ) -> Duration {
        let Some(v) = v else { return default };
        match humantime::parse_duration(v.get_ref()) {
            Ok(d) if d > MAX_DURATION => {
                self.problem(
                    v.span(),
                    key,
                    format!(
                        "`{}` is longer than dnsreg allows for any duration ({}); write e.g. \"30s\", \"5m\" or \"1h\"",
                        v.get_ref(),
                        humantime::format_duration(MAX_DURATION)
                    ),
                );
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.problem(
                    v.span(),
                    key,
                    format!(
                        "`{}` is not a duration ({e}); write e.g. \"30s\", \"5m\" or \"1h\"",
                        v.get_ref()
                    ),
                );
                default
            }
        }
    }

    pub(super) fn template(&mut self, v: &S<String>, key: &str) -> Option<Template> {
        match Template::new(v.get_ref()) {
            Ok(t) => Some(t),
            Err(e) => {
                self.problem(v.span(), key, e);
                None
            }
        }
    }
}

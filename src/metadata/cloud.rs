//! What a cloud is to the agent: a metadata service that can be probed for
//! `auto`, read for the instance's identity and, on some clouds, asked whether
//! the instance is about to go away. Each cloud's file implements [`Cloud`]
//! for one unit struct, so that what the cloud supports is said there, once.

use std::future::Future;
use std::pin::Pin;

use super::{Identity, MetadataError, Notice};
use crate::config::MetadataKind;

/// A cloud's answer, still to come. Boxed so that [`Cloud`] can be used as
/// `&dyn Cloud`; `Send` so that `auto` can probe every cloud at once.
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One cloud's metadata service. `base` is `[instance] metadata_endpoint`:
/// when set, it replaces the cloud's own address.
pub trait Cloud: Sync {
    /// The cloud's `[instance] metadata` kind.
    fn kind(&self) -> MetadataKind;

    /// The cloud's name, as `[instance] metadata` writes it.
    fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// Whether `auto` probes this cloud over HTTP; a cloud that is not probed
    /// is found only by DMI or cloud-init.
    fn probed(&self) -> bool {
        true
    }

    /// Does this cloud's metadata service answer at `base`, quickly, as itself?
    fn probe<'a>(&'a self, base: Option<&'a str>) -> Pending<'a, bool>;

    /// Reads the instance's identity and addresses; `detected_by` says how the
    /// cloud was chosen, for `whoami`.
    fn identity<'a>(
        &'a self,
        base: Option<&'a str>,
        detected_by: &'a str,
    ) -> Pending<'a, Result<Identity, MetadataError>>;

    /// Whether the cloud publishes termination, scale-in or preemption notices
    /// that the agent should watch.
    fn has_notices(&self) -> bool;

    /// A notice that the instance is about to go away, if there is one. Clouds
    /// without notices say none, without asking anything.
    fn notice<'a>(
        &'a self,
        base: Option<&'a str>,
    ) -> Pending<'a, Result<Option<Notice>, MetadataError>> {
        let _ = base;
        Box::pin(async { Ok(None) })
    }

    /// Why this cloud's metadata may show no public IPv4 although the instance
    /// has one, said after "has no public IPv4 address"; empty when it always
    /// shows it.
    fn no_public_ipv4_why(&self) -> &'static str {
        ""
    }
}

/// The [`Cloud`] methods of a cloud whose module reads it with its own free
/// functions `probe(base)` and `identity(base, detected_by)` and, given
/// `notice`, `notice(base)` (then `has_notices` is true; without it, false):
/// written inside its `impl Cloud`, beside what differs from cloud to cloud.
macro_rules! read_by_module_fns {
    () => {
        $crate::metadata::cloud::read_by_module_fns!(@read);

        fn has_notices(&self) -> bool {
            false
        }
    };
    (@read) => {
        fn probe<'a>(
            &'a self,
            base: Option<&'a str>,
        ) -> $crate::metadata::cloud::Pending<'a, bool> {
            Box::pin(probe(base))
        }

        fn identity<'a>(
            &'a self,
            base: Option<&'a str>,
            detected_by: &'a str,
        ) -> $crate::metadata::cloud::Pending<
            'a,
            Result<$crate::metadata::Identity, $crate::metadata::MetadataError>,
        > {
            Box::pin(identity(base, detected_by))
        }
    };
    (notice) => {
        $crate::metadata::cloud::read_by_module_fns!(@read);

        fn has_notices(&self) -> bool {
            true
        }

        fn notice<'a>(
            &'a self,
            base: Option<&'a str>,
        ) -> $crate::metadata::cloud::Pending<
            'a,
            Result<Option<$crate::metadata::Notice>, $crate::metadata::MetadataError>,
        > {
            Box::pin(notice(base))
        }
    };
}
pub(crate) use read_by_module_fns;

/// Serializes a [`MetadataKind`] as its name (`"aws"`, …, `"none"`), the form
/// `whoami --json` has always written.
pub fn serialize_kind<S: serde::Serializer>(kind: &MetadataKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.name())
}

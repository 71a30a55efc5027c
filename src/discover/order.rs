//! The order RFC 2782 ("Usage rules") says a client tries SRV targets in,
//! and what an SRV rrset says before that.

use hickory_resolver::proto::rr::rdata::SRV;

/// What an SRV rrset says.
#[derive(Debug, PartialEq)]
pub(crate) enum SrvAnswer {
    /// A single record with target "." (RFC 2782: "the service is decidedly
    /// not available at this domain").
    Unavailable,
    /// The usable records ("." targets among others are dropped).
    Targets(Vec<(SRV, u32)>),
}

pub(crate) fn classify_srv(mut records: Vec<(SRV, u32)>) -> SrvAnswer {
    if records.len() == 1 && records[0].0.target.is_root() {
        return SrvAnswer::Unavailable;
    }
    records.retain(|(s, _)| !s.target.is_root());
    SrvAnswer::Targets(records)
}

pub(crate) fn order(records: Vec<(SRV, u32)>) -> Vec<(SRV, u32)> {
    let mut rng = rand::rng();
    rfc2782_order(records, |(s, _)| (s.priority, s.weight), &mut |max| {
        rand::RngExt::random_range(&mut rng, 0..=max)
    })
}

/// DNS-SD instances' SRV records, each with its TTL and what else the
/// instance said, ordered together as one rrset would be (RFC 2782).
pub(crate) fn order_instances<T>(found: Vec<(SRV, u32, T)>) -> Vec<(SRV, u32, T)> {
    let mut rng = rand::rng();
    rfc2782_order(
        found,
        |(srv, _, _)| (srv.priority, srv.weight),
        &mut |max| rand::RngExt::random_range(&mut rng, 0..=max),
    )
}

/// Orders `items` as RFC 2782 ("Usage rules") says a client tries SRV
/// targets: lower priority first; within one priority, repeatedly pick by
/// weight among those not yet ordered. `key` gives (priority, weight); `draw(max)`
/// returns a uniform random number in `0..=max` (injected so tests can script
/// it). `--one` is the first of this order.
pub fn rfc2782_order<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> (u16, u16),
    draw: &mut impl FnMut(u64) -> u64,
) -> Vec<T> {
    // "arrange all SRV RRs (that have not been ordered yet) in any order":
    // a random one, so that equal weights (all 0 included) spread clients evenly.
    shuffle(&mut items, draw);
    items.sort_by_key(|t| key(t).0); // stable: keeps the random order within a priority
    let mut out = Vec::with_capacity(items.len());
    while !items.is_empty() {
        let priority = key(&items[0]).0;
        let n = items.iter().take_while(|t| key(t).0 == priority).count();
        let group: Vec<T> = items.drain(..n).collect();
        out.extend(weighted_order(group, &key, draw));
    }
    out
}

/// Fisher–Yates with the injected `draw`.
pub(super) fn shuffle<T>(items: &mut [T], draw: &mut impl FnMut(u64) -> u64) {
    for i in (1..items.len()).rev() {
        let j = usize::try_from(draw(i as u64)).unwrap_or(0).min(i);
        items.swap(i, j);
    }
}

/// RFC 2782's selection within one priority, on a list already in "any order".
pub(super) fn weighted_order<T>(
    mut group: Vec<T>,
    key: &impl Fn(&T) -> (u16, u16),
    draw: &mut impl FnMut(u64) -> u64,
) -> Vec<T> {
    // "except that all those with weight 0 are placed at the beginning of the
    // list": a weight-0 entry is picked only when the draw is exactly 0, the
    // "very small chance" the RFC asks for when others have weights.
    group.sort_by_key(|t| key(t).1 != 0);
    let mut out = Vec::with_capacity(group.len());
    while !group.is_empty() {
        let sum: u64 = group.iter().map(|t| u64::from(key(t).1)).sum();
        let r = draw(sum).min(sum);
        // "select the RR whose running sum value is the first in the selected
        // order which is greater than or equal to the random number selected".
        let mut running = 0;
        let pick = group
            .iter()
            .position(|t| {
                running += u64::from(key(t).1);
                running >= r
            })
            .unwrap_or(group.len() - 1);
        out.push(group.remove(pick));
    }
    out
}

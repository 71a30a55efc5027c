//! `dnsreg discover` over multicast DNS (RFC 6762) on the local segment:
//! for NAMEs under `.local`, or with `--mdns`.
//!
//! One round is a few one-shot queries (RFC 6762 §5.1) from an ephemeral
//! port on every usable interface ([`socket`]): first SRV, PTR, A and AAAA
//! of NAME; then, for what the answers and their additional records did not
//! bring, the instances' SRV and TXT and (`--resolve`) the targets'
//! addresses ([`answers`]). Each exchange listens for a short window, and the
//! round for a bounded number of them (`WINDOW` × (1 + `FOLLOW_UPS`), one
//! second); `--wait` repeats rounds as for unicast. The endpoints are
//! then what unicast discover makes of the same records (RFC 2782 order,
//! RFC 6763 TXT, the same printing).

use hickory_proto::rr::{Name, RecordType};
use tokio::time::{Duration, Instant};

use super::Request;
use super::endpoint::Endpoint;
use crate::fail::Fail;

mod answers;
mod socket;
mod wire;

/// How long each exchange listens. Responders answer a legacy unicast query
/// at once (no §6 pacing): mdns-sd and python-zeroconf within milliseconds,
/// avahi-daemon likewise; the rest covers a busy host.
const WINDOW: Duration = Duration::from_millis(250);

/// Exchanges per round after the first: instance SRV/TXT, then addresses,
/// and one spare for a lost packet (a query nobody answered is asked again).
const FOLLOW_UPS: u32 = 3;

/// One round: the endpoints, or why there are none.
pub(super) async fn attempt(request: &Request) -> Result<Vec<Endpoint>, Fail> {
    let links = socket::links(request.interface.as_deref())?;
    let sockets = socket::Sockets::open(links)?;
    let where_ = sockets.names();
    let id = rand::random::<u16>();
    let mut heard = answers::Heard::default();
    let mut questions = answers::first_questions(&request.name);
    for exchange in 0..=FOLLOW_UPS {
        ask(&sockets, id, &questions).await?;
        sockets
            .receive(Instant::now() + WINDOW, |packet| {
                if let Some(records) = wire::answers(packet, id) {
                    heard.add(records);
                }
            })
            .await;
        match answers::step(&heard, request, exchange == FOLLOW_UPS) {
            answers::Step::Done(endpoints) => return Ok(endpoints),
            answers::Step::Failed(f) => {
                return Err(Fail::Transient(format!("{f} on {where_}")));
            }
            answers::Step::Ask(next) => questions = next,
        }
    }
    // The last exchange always decides (`last` above); this is not reached.
    Err(Fail::Transient(format!("no answer on {where_}")))
}

/// Sends each question as its own packet: a legacy unicast answer must fit
/// in 512 bytes for avahi-daemon (it drops what does not fit), so one
/// question per answer keeps each whole.
async fn ask(
    sockets: &socket::Sockets,
    id: u16,
    questions: &[(Name, RecordType)],
) -> Result<(), Fail> {
    let packets: Vec<Vec<u8>> = questions
        .iter()
        .map(|(name, rtype)| wire::query(id, name, *rtype))
        .collect();
    sockets.send(&packets).await
}

#[cfg(test)]
mod tests;

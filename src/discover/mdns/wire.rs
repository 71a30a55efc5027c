//! The packets: a one-shot query (RFC 6762 §5.1), and the records of an
//! answer, read leniently.
//!
//! Answers come from other people's responders, so a record this module
//! cannot read (an NSEC whose next name is compressed, which RFC 6762 §18.14
//! allows and python-zeroconf does; a type hickory does not know) is skipped
//! by its RDLENGTH rather than losing the whole packet, as
//! `Message::from_vec` would.

use hickory_proto::op::{Header, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, DecodeError, Restrict};

/// RFC 6762 §10.2: the top bit of an answer's class is the cache-flush bit;
/// §18.12: the top bit of a question's class asks for a unicast reply.
const TOP_BIT: u16 = 0x8000;

/// The only types an answer is read for; the rest are skipped.
const WANTED: [RecordType; 5] = [
    RecordType::PTR,
    RecordType::SRV,
    RecordType::TXT,
    RecordType::A,
    RecordType::AAAA,
];

/// A query for `name`/`rtype` with message id `id`. Sent from a port other
/// than 5353, it is a "legacy unicast" query (RFC 6762 §6.7): responders
/// answer it directly to the sender, echoing the id, and do not wait for the
/// multicast pacing of §6. RD is clear (§18.6).
pub(super) fn query(id: u16, name: &Name, rtype: RecordType) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(name.clone(), rtype));
    // A name and a type always encode (names are length-checked when made).
    message.to_vec().unwrap_or_default()
}

/// The records of an answer to the query with id `id`, from every section
/// (responders put what they know in answers or additionals: avahi
/// everything in answers). `None` if the packet is not such an answer; TTL 0
/// records (goodbyes, RFC 6762 §10.1) are left out: they say a record is gone.
pub(super) fn answers(packet: &[u8], id: u16) -> Option<Vec<Record>> {
    let mut decoder = BinDecoder::new(packet);
    let header = Header::read(&mut decoder).ok()?;
    let meta = header.metadata;
    if meta.message_type != MessageType::Response || meta.op_code != OpCode::Query || meta.id != id
    {
        return None;
    }
    for _ in 0..header.counts.queries {
        Name::read(&mut decoder).ok()?;
        decoder.read_u16().ok()?;
        decoder.read_u16().ok()?;
    }
    let total = u32::from(header.counts.answers)
        + u32::from(header.counts.authorities)
        + u32::from(header.counts.additionals);
    let mut out = Vec::new();
    for _ in 0..total {
        // A truncated or garbled tail ends the reading; what came before stands.
        match record(&mut decoder) {
            Ok(Some(r)) if r.ttl > 0 => out.push(r),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Some(out)
}

/// One resource record; `Ok(None)` for one skipped (not wanted, not IN, or
/// unreadable data). An error means the framing itself is broken.
fn record(decoder: &mut BinDecoder<'_>) -> Result<Option<Record>, DecodeError> {
    let name = Name::read(decoder)?;
    let rtype = RecordType::from(decoder.read_u16()?.unverified());
    let class = decoder.read_u16()?.unverified() & !TOP_BIT;
    let ttl = decoder.read_u32()?.unverified();
    let length = decoder.read_u16()?.unverified();
    let start = decoder.index();
    let end = start + usize::from(length);
    if end > start + decoder.len() {
        return Err(DecodeError::InsufficientBytes);
    }
    let data = if WANTED.contains(&rtype) && class == u16::from(DNSClass::IN) {
        // Names inside the data may point anywhere in the packet, so the
        // data is read in place, from a decoder over the whole packet.
        RData::read(decoder, rtype, Restrict::new(length)).ok()
    } else {
        None
    };
    // Wherever the data's reading stopped, the next record starts at `end`.
    *decoder = decoder.clone(u16::try_from(end).map_err(|_| DecodeError::InsufficientBytes)?);
    Ok(data.map(|d| Record::from_rdata(name, ttl, d)))
}

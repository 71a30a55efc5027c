//! The inputs: arbitrary bytes and text, and structure-aware mutations of
//! the corpus (tokens at every limit, numbers at the edges, JSON and TOML
//! values swapped for wrong ones, repeats, splices of two seeds).

use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::Index;

use super::Input;

/// The largest input a mutation may grow to.
const MAX_INPUT: usize = 128 * 1024;

/// Tokens worth inserting anywhere: numbers at and past every limit, the
/// characters parsers treat specially, control characters, byte-order marks,
/// invalid UTF-8.
const TOKENS: &[&[u8]] = &[
    b"0",
    b"-1",
    b"-0",
    b"255",
    b"256",
    b"65535",
    b"65536",
    b"2147483647",
    b"2147483648",
    b"4294967295",
    b"4294967296",
    b"9223372036854775807",
    b"9223372036854775808",
    b"-9223372036854775809",
    b"18446744073709551615",
    b"18446744073709551616",
    b"340282366920938463463374607431768211456",
    b"99999999999999999999999999999999999999999999999999",
    b"1e400",
    b"-1e-400",
    b"0.5",
    b"NaN",
    b"inf",
    b"0x7f",
    b"\0",
    b"\x01",
    b"\x07",
    b"\x08",
    b"\x0b",
    b"\x0c",
    b"\x1b[31m",
    b"\x7f",
    b"\r",
    b"\n",
    b"\r\n",
    b"\t",
    b" ",
    b"\"",
    b"'",
    b"\\",
    b"\\\\",
    b"\\u0000",
    b"\\ud800",
    b"\\x",
    b"\\0",
    b"\\999",
    b"\\255",
    b"{",
    b"}",
    b"[",
    b"]",
    b"(",
    b")",
    b"<",
    b">",
    b"=",
    b":",
    b";",
    b",",
    b".",
    b"..",
    b"/",
    b"#",
    b"@",
    b"*",
    b"%",
    b"&",
    b"_",
    b"-",
    b"+",
    b"\xef\xbb\xbf",
    b"\xe2\x80\xae",
    b"\xe2\x80\xa8",
    b"\xc2\x85",
    b"\xc3\xbf",
    b"\xf4\x8f\xbf\xbf",
    b"\xff",
    b"\xfe",
    b"\xc0\x80",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xe2\x82",
];

/// The numbers at every integer type's edges, for [`Mutation::Boundary`].
const BOUNDARIES: &[&[u8]] = &[
    b"0",
    b"-1",
    b"65536",
    b"4294967295",
    b"4294967296",
    b"9223372036854775807",
    b"18446744073709551615",
    b"18446744073709551616",
];

#[derive(Clone, Debug)]
pub(super) enum Mutation {
    Truncate(Index),
    Delete(Index, u8),
    FlipBit(Index, u8),
    SetByte(Index, u8),
    /// A token of [`TOKENS`] or of the target's own (index into both).
    Insert(Index, Index),
    /// A token in place of the run of digits (or the byte) at the position.
    ReplaceNumber(Index, Index),
    /// A number of [`BOUNDARIES`] in place of the next run of digits.
    Boundary(Index, Index),
    /// Where the input is JSON: one of its scalar values replaced with one
    /// of [`json_values`], the rest kept (so that the reader gets past its
    /// syntax check to what it does with the values).
    JsonValue(Index, Index),
    /// The same where the input is a TOML document, with [`toml_values`].
    TomlValue(Index, Index),
    InsertBytes(Index, Vec<u8>),
    /// Copies `len` bytes from the first position to the second.
    Duplicate(Index, u8, Index),
    /// Repeats `len` bytes at the position `times` times: deep nesting, long
    /// labels, long lines.
    Repeat(Index, u8, u16),
    /// Inserts a part of another seed.
    Splice(Index, Index, u8, Index),
}

pub(super) fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => any::<Index>().prop_map(Mutation::Truncate),
        2 => (any::<Index>(), 1u8..32).prop_map(|(i, n)| Mutation::Delete(i, n)),
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        4 => (any::<Index>(), any::<Index>()).prop_map(|(i, t)| Mutation::Insert(i, t)),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(i, t)| Mutation::ReplaceNumber(i, t)),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(i, t)| Mutation::Boundary(i, t)),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(i, t)| Mutation::JsonValue(i, t)),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(i, t)| Mutation::TomlValue(i, t)),
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::InsertBytes(i, b)),
        2 => (any::<Index>(), 1u8..64, any::<Index>())
            .prop_map(|(a, n, b)| Mutation::Duplicate(a, n, b)),
        1 => (any::<Index>(), 1u8..4, 2u16..20_000)
            .prop_map(|(i, n, t)| Mutation::Repeat(i, n, t)),
        1 => (any::<Index>(), any::<Index>(), 1u8..128, any::<Index>())
            .prop_map(|(s, a, n, b)| Mutation::Splice(s, a, n, b)),
    ]
}

fn pos(i: &Index, len: usize) -> usize {
    i.index(len + 1)
}

/// `seed` with `mutations` applied in turn, cut to [`MAX_INPUT`] after
/// each; a splice takes from `seeds`, and an inserted token is one of
/// [`TOKENS`] or of the target's own, `extra`.
pub(super) fn apply(
    seed: &[u8],
    mutations: &[Mutation],
    seeds: &[Vec<u8>],
    extra: &[&[u8]],
) -> Vec<u8> {
    let mut b = seed.to_vec();
    for m in mutations {
        mutate(&mut b, m, seeds, extra);
        b.truncate(MAX_INPUT);
    }
    b
}

/// The token `t` picks among [`TOKENS`] and then the target's own, `extra`.
fn token<'a>(t: &Index, extra: &[&'a [u8]]) -> &'a [u8] {
    let n = TOKENS.len() + extra.len();
    let k = t.index(n);
    if k < TOKENS.len() {
        TOKENS[k]
    } else {
        extra[k - TOKENS.len()]
    }
}

/// Applies one mutation to `b`, uncut.
fn mutate(b: &mut Vec<u8>, m: &Mutation, seeds: &[Vec<u8>], extra: &[&[u8]]) {
    match m {
        Mutation::Truncate(i) => b.truncate(pos(i, b.len())),
        Mutation::Delete(i, n) => {
            let at = pos(i, b.len());
            let end = (at + usize::from(*n)).min(b.len());
            b.drain(at..end);
        }
        Mutation::FlipBit(i, bit) if !b.is_empty() => {
            let at = i.index(b.len());
            b[at] ^= 1 << bit;
        }
        Mutation::SetByte(i, v) if !b.is_empty() => {
            let at = i.index(b.len());
            b[at] = *v;
        }
        Mutation::FlipBit(..) | Mutation::SetByte(..) => {}
        Mutation::Insert(i, t) => {
            let at = pos(i, b.len());
            b.splice(at..at, token(t, extra).iter().copied());
        }
        Mutation::ReplaceNumber(i, t) => replace_number(b, pos(i, b.len()), token(t, extra)),
        Mutation::Boundary(i, t) => {
            let number = BOUNDARIES[t.index(BOUNDARIES.len())];
            replace_number(b, pos(i, b.len()), number);
        }
        Mutation::JsonValue(i, t) => replace_json_value(b, i, t),
        Mutation::TomlValue(i, t) => replace_toml_value(b, i, t),
        Mutation::InsertBytes(i, bytes) => {
            let at = pos(i, b.len());
            b.splice(at..at, bytes.iter().copied());
        }
        Mutation::Duplicate(a, n, to) => {
            let from = pos(a, b.len());
            let end = (from + usize::from(*n)).min(b.len());
            let part = b[from..end].to_vec();
            let at = pos(to, b.len());
            b.splice(at..at, part);
        }
        Mutation::Repeat(i, n, times) => repeat(b, pos(i, b.len()), *n, *times),
        Mutation::Splice(s, a, n, to) => {
            if !seeds.is_empty() {
                let other = &seeds[s.index(seeds.len())];
                let from = pos(a, other.len());
                let end = (from + usize::from(*n)).min(other.len());
                let at = pos(to, b.len());
                b.splice(at..at, other[from..end].iter().copied());
            }
        }
    }
}

/// Puts `number` in place of the next run of digits at or after `at`, else
/// of the byte there.
fn replace_number(b: &mut Vec<u8>, at: usize, number: &[u8]) {
    let start = b[at..]
        .iter()
        .position(u8::is_ascii_digit)
        .map_or(at, |p| at + p);
    let end = b[start..]
        .iter()
        .position(|c| !c.is_ascii_digit())
        .map_or(b.len(), |p| start + p)
        .max((start + 1).min(b.len()));
    b.splice(start..end, number.iter().copied());
}

/// Where `b` is JSON: its `i`-th scalar value replaced with the `t`-th of
/// [`json_values`], the rest kept.
fn replace_json_value(b: &mut Vec<u8>, i: &Index, t: &Index) {
    if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(b) {
        let mut leaves = Vec::new();
        json_leaves(&mut v, &mut leaves);
        if !leaves.is_empty() {
            let values = json_values();
            *leaves.swap_remove(i.index(leaves.len())) = values[t.index(values.len())].clone();
            *b = serde_json::to_vec(&v).expect("JSON");
        }
    }
}

/// Where `b` is a TOML document: its `i`-th scalar value replaced with the
/// `t`-th of [`toml_values`], the rest kept.
fn replace_toml_value(b: &mut Vec<u8>, i: &Index, t: &Index) {
    if let Ok(text) = std::str::from_utf8(b)
        && let Ok(mut v) = text.parse::<toml::Table>()
    {
        let mut leaves = Vec::new();
        for (_, x) in v.iter_mut() {
            toml_leaves(x, &mut leaves);
        }
        if !leaves.is_empty() {
            let values = toml_values();
            *leaves.swap_remove(i.index(leaves.len())) = values[t.index(values.len())].clone();
            if let Ok(text) = toml::to_string(&v) {
                *b = text.into_bytes();
            }
        }
    }
}

/// Repeats the `n` bytes at `from` `times` times right after them, at most
/// [`MAX_INPUT`] bytes of repeats: deep nesting, long labels, long lines.
fn repeat(b: &mut Vec<u8>, from: usize, n: u8, times: u16) {
    let end = (from + usize::from(n)).min(b.len());
    let part = b[from..end].to_vec();
    if !part.is_empty() {
        let times = usize::from(times).min(MAX_INPUT / part.len());
        let more: Vec<u8> = part
            .iter()
            .copied()
            .cycle()
            .take(part.len() * times)
            .collect();
        b.splice(end..end, more);
    }
}

/// The scalar values of a JSON document, in document order.
fn json_leaves<'a>(v: &'a mut serde_json::Value, out: &mut Vec<&'a mut serde_json::Value>) {
    match v {
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| json_leaves(x, out)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|x| json_leaves(x, out)),
        other => out.push(other),
    }
}

/// Values a JSON field should not hold: numbers at the edges, the wrong
/// type, empty and huge strings, control characters.
fn json_values() -> Vec<serde_json::Value> {
    use serde_json::json;
    vec![
        json!(u64::MAX),
        json!(u64::from(u32::MAX) + 1),
        json!(i64::MIN),
        json!(-1),
        json!(0),
        json!(0.5),
        json!(1.0e308),
        json!(null),
        json!(true),
        json!([]),
        json!({}),
        json!(""),
        json!("\u{0}\u{1b}[31m\r\n\t"),
        json!("x".repeat(70_000)),
        json!("dnsreg1 www.example.com. A 192.0.2.1"),
        json!("::"),
        json!("255.255.255.255"),
    ]
}

/// The scalar values of a TOML document, in document order.
fn toml_leaves<'a>(v: &'a mut toml::Value, out: &mut Vec<&'a mut toml::Value>) {
    match v {
        toml::Value::Array(a) => a.iter_mut().for_each(|x| toml_leaves(x, out)),
        toml::Value::Table(t) => t.iter_mut().for_each(|(_, x)| toml_leaves(x, out)),
        other => out.push(other),
    }
}

/// Values a configuration setting should not hold.
fn toml_values() -> Vec<toml::Value> {
    use toml::Value;
    let s = |s: &str| Value::String(s.to_string());
    vec![
        Value::Integer(i64::MAX),
        Value::Integer(i64::MIN),
        Value::Integer(-1),
        Value::Integer(0),
        Value::Integer(65_536),
        Value::Integer(4_294_967_296),
        Value::Float(f64::NAN),
        Value::Float(f64::INFINITY),
        Value::Boolean(true),
        Value::Array(Vec::new()),
        Value::Table(toml::Table::new()),
        s(""),
        s("{"),
        s("}{"),
        s("{instance_id}{hostname}{region}{ipv4}{ipv4_dashed}{ipv6}"),
        s("\u{0}\u{1b}[31m\n"),
        s(&"a".repeat(300)),
        s(&"a.".repeat(200)),
        s("0s"),
        s("1ns"),
        s("18446744073709551615s"),
        s("9999999999999999999999d"),
        s("-1s"),
        s("_x._tcp"),
        s("@"),
        s("."),
        s("http://127.0.0.1:0/"),
        s("[::1]:0"),
        s("/dev/null"),
    ]
}

/// Arbitrary bytes, arbitrary text, and (mostly) mutated seeds.
pub fn bytes(seeds: &[(String, Vec<u8>)], extra: &[&[u8]]) -> BoxedStrategy<Input> {
    let seeds: Arc<Vec<Vec<u8>>> = Arc::new(seeds.iter().map(|(_, b)| b.clone()).collect());
    let extra: Arc<Vec<&'static [u8]>> = Arc::new(
        extra
            .iter()
            .map(|t| &*Box::leak(t.to_vec().into_boxed_slice()))
            .collect(),
    );
    let n = seeds.len();
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..256).prop_map(Input),
        1 => prop::collection::vec(any::<char>(), 0..256)
            .prop_map(|c| Input(c.into_iter().collect::<String>().into_bytes())),
        8 => (0..n, prop::collection::vec(mutation(), 1..8)).prop_map(move |(i, m)| {
            Input(apply(&seeds[i], &m, &seeds, &extra))
        }),
    ]
    .boxed()
}

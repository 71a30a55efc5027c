//! Multicast DNS (RFC 6762) and DNS-SD (RFC 6763) on the local segment.

// Wired to one-shot `join` and `leave` by the mdns provider.
#[allow(dead_code)]
pub mod avahi;

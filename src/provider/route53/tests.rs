use super::api::{is_conflict, unescape_name};
use crate::provider::is_loopback_url;

#[test]
fn conflicts_are_told_from_invalid_input() {
    assert!(is_conflict(
        "Tried to create resource record set [name='www.example.com.', type='A'] but it already exists"
    ));
    assert!(is_conflict(
        "Tried to delete resource record set [name='www.example.com.', type='A'] but the values provided do not match the current values"
    ));
    assert!(!is_conflict(
        "Invalid Resource Record: FATAL problem: ARRDATAIllegalIPv4Address"
    ));
}

#[test]
fn escaped_names_compare_equal() {
    assert_eq!(unescape_name("\\052.Example.com."), "*.example.com.");
    assert_eq!(unescape_name("www.example.com."), "www.example.com.");
}

#[test]
fn plain_http_only_to_loopback() {
    assert!(is_loopback_url("http://127.0.0.1:18053"));
    assert!(is_loopback_url("http://localhost:1/"));
    assert!(!is_loopback_url("http://10.0.0.1:18053"));
    assert!(!is_loopback_url("http://route53.example"));
}

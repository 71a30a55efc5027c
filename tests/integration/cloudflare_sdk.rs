//! The Cloudflare stand-in proven with Cloudflare's official Python SDK
//! (strict response validation), as the Route53 one is with the AWS CLI and
//! boto3: its answers have the real API's shape, and its refusals the real
//! API's classes. The script is tests/sdk/cloudflare_sdk.py.

use std::process::Command;

use testkit::cloudflare::CloudflareServer;

use crate::util::{isolate, run_expect, stdout, venv_bin};

#[test]
fn the_official_sdk_accepts_every_answer_of_the_stand_in() {
    let dir = tempfile::tempdir().unwrap();
    let cf = CloudflareServer::start();
    cf.create_zone("example.com");
    cf.add_token("sdk-token-1234", true);
    let mut c = Command::new(venv_bin("python"));
    isolate(&mut c, dir.path());
    c.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/sdk/cloudflare_sdk.py"
    ))
    .args([
        cf.url().as_str(),
        "sdk-token-1234",
        "not-a-token-it-knows",
        "example.com",
    ]);
    let out = run_expect(&mut c, 0);
    let said = stdout(&out);
    for step in [
        "zones: list by name and get",
        "records: create and list",
        "records: batch",
        "records: delete",
        "refused: a record that is gone (404)",
        "refused: a wrong token",
    ] {
        assert!(said.contains(step), "{step}: {said}");
    }
}

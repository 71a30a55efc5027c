//! The suite never reads the host it runs on: every command started through
//! [`isolate`](crate::util::isolate) has cloud detection's inputs (DMI,
//! cloud-init's instance-data.json, the metadata addresses) in its own
//! scratch directory and on loopback. Proven by planting an instance-data.json
//! there that names another cloud: a flag-configured command (`metadata =
//! "auto"`, as most tests run) believes it, and asks that cloud's metadata
//! service on loopback, not at its real address.

use crate::util::{Env, plant_cloud_init, run_expect, stderr, stdout};

#[test]
fn flag_configured_commands_detect_the_cloud_from_the_tests_files_not_the_hosts() {
    let env = Env::new();
    // Nothing planted: cloud-init's verdict is absent, so the AWS endpoint
    // the test set names the cloud, and the stand-in answers.
    let out = run_expect(env.dnsreg().args(["whoami", "--json"]), 0);
    let id: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(id["cloud"], "aws", "{id}");
    assert_eq!(
        id["detected_by"], "auto: AWS_EC2_METADATA_SERVICE_ENDPOINT is set",
        "{id}"
    );

    // Planted: the file in the test's directory is the one read (the host's
    // /run/cloud-init is not), and GCP's metadata is asked on loopback.
    plant_cloud_init(env.dir.path(), "gce");
    let out = run_expect(env.dnsreg().args(["whoami", "--json"]), 1);
    let err = stderr(&out);
    // And a one-shot join configured from flags alone, as the provider tests run.
    let join = run_expect(&mut env.flags("join", "--name www"), 1);
    assert!(
        stderr(&join).contains("v1.cloud_name is \"gce\""),
        "{}",
        stderr(&join)
    );
    assert!(env.records().is_empty(), "{:?}", env.records());
    let planted = env.dir.path().join("instance-data.json");
    assert!(
        err.contains(&format!("{} v1.cloud_name is \"gce\"", planted.display())),
        "{err}"
    );
    assert!(err.contains("http://127.0.0.1:9"), "{err}");
    assert!(!err.contains("metadata.google.internal"), "{err}");
    assert!(!err.contains("169.254.169.254"), "{err}");
}

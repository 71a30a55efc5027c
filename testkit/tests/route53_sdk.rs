//! The AWS SDK for Rust against the Route53 stand-in.
//!
//! dnsreg talks to Route53 through aws-sdk-route53, and decides what to retry
//! from the typed errors and codes the SDK produces. These tests prove the
//! stand-in's answers parse into the same typed errors real Route53's answers
//! do (InvalidChangeBatch, PriorRequestNotComplete, NoSuchHostedZone as
//! variants; Throttling and 5xx as codes), and that the ordinary round trips
//! work. SDK retries are off so that every fault is seen exactly once.

use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_route53::Client;
use aws_sdk_route53::config::retry::RetryConfig;
use aws_sdk_route53::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use aws_sdk_route53::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_route53::operation::RequestId;
use aws_sdk_route53::operation::change_resource_record_sets::ChangeResourceRecordSetsError;
use aws_sdk_route53::operation::get_hosted_zone::GetHostedZoneError;
use aws_sdk_route53::operation::list_resource_record_sets::ListResourceRecordSetsError;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet, RrType,
};
use testkit::route53::{Fault, Route53Server};

/// A client for `server` with fixed test credentials and no retries. Built from
/// an explicit `SdkConfig`, so nothing reads the environment, profile files or
/// the instance metadata service.
fn client(server: &Route53Server) -> Client {
    client_with(server, "test", "test")
}

fn client_with(server: &Route53Server, access_key: &str, secret_key: &str) -> Client {
    let credentials = Credentials::new(access_key, secret_key, None, None, "testkit");
    let config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .endpoint_url(server.url())
        .retry_config(RetryConfig::disabled())
        .build();
    Client::new(&config)
}

fn rrset(name: &str, ttl: i64, values: &[&str]) -> ResourceRecordSet {
    let mut builder = ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::A)
        .ttl(ttl);
    for value in values {
        builder =
            builder.resource_records(ResourceRecord::builder().value(*value).build().unwrap());
    }
    builder.build().unwrap()
}

fn batch(changes: &[(ChangeAction, &ResourceRecordSet)]) -> ChangeBatch {
    let mut builder = ChangeBatch::builder().comment("sdk test");
    for (action, set) in changes {
        builder = builder.changes(
            Change::builder()
                .action(action.clone())
                .resource_record_set((*set).clone())
                .build()
                .unwrap(),
        );
    }
    builder.build().unwrap()
}

async fn submit(
    client: &Client,
    zone: &str,
    changes: &[(ChangeAction, &ResourceRecordSet)],
) -> Result<String, SdkError<ChangeResourceRecordSetsError>> {
    let out = client
        .change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(batch(changes))
        .send()
        .await?;
    Ok(out.change_info().unwrap().id().to_owned())
}

#[tokio::test]
async fn change_then_get_change_round_trip() {
    let server = Route53Server::start();
    server.set_insync_after(Duration::from_secs(1));
    // The SDK's real signatures are recomputed and checked by the stand-in.
    server.set_credentials(Some(("test", "test")));
    let client = client(&server);
    let created = client
        .create_hosted_zone()
        .name("example.com")
        .caller_reference("sdk-1")
        .send()
        .await
        .expect("CreateHostedZone");
    let zone_id = created.hosted_zone().unwrap().id().to_owned();
    assert!(zone_id.starts_with("/hostedzone/Z"), "{zone_id}");
    assert_eq!(created.delegation_set().unwrap().name_servers().len(), 4);
    assert!(created.location().contains("/2013-04-01/hostedzone/"));
    let bare = zone_id.trim_start_matches("/hostedzone/");
    assert_eq!(server.zone_id("example.com").as_deref(), Some(bare));

    let www = rrset("www.example.com", 60, &["192.0.2.1"]);
    let change_id = submit(&client, &zone_id, &[(ChangeAction::Create, &www)])
        .await
        .expect("ChangeResourceRecordSets");
    assert!(change_id.starts_with("/change/C"), "{change_id}");
    let first = client
        .get_change()
        .id(&change_id)
        .send()
        .await
        .expect("GetChange");
    assert_eq!(
        first.change_info().unwrap().status(),
        &ChangeStatus::Pending
    );
    assert_eq!(first.change_info().unwrap().comment(), Some("sdk test"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = client
            .get_change()
            .id(&change_id)
            .send()
            .await
            .expect("GetChange");
        if info.change_info().unwrap().status() == &ChangeStatus::Insync {
            break;
        }
        assert!(Instant::now() < deadline, "the change never became INSYNC");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.values(bare, "www.example.com", "A"), ["192.0.2.1"]);

    // The swap dnsreg does on a shared rrset: DELETE the exact current one, CREATE the new one.
    let grown = rrset("www.example.com", 60, &["192.0.2.1", "192.0.2.2"]);
    submit(
        &client,
        bare,
        &[(ChangeAction::Delete, &www), (ChangeAction::Create, &grown)],
    )
    .await
    .expect("swap");
    assert_eq!(
        server.values(bare, "www.example.com", "A"),
        ["192.0.2.1", "192.0.2.2"]
    );

    let listed = client
        .list_hosted_zones_by_name()
        .dns_name("example.com")
        .send()
        .await
        .expect("ListHostedZonesByName");
    assert_eq!(listed.hosted_zones()[0].name(), "example.com.");
    assert!(!listed.is_truncated());
    let stats = server.stats();
    assert_eq!(stats.applied_batches, 2);
}

#[tokio::test]
async fn errors_map_to_the_sdks_typed_errors_and_codes() {
    let server = Route53Server::start();
    let zone = server.create_zone("example.com");
    let client = client(&server);
    let www = rrset("www.example.com", 60, &["192.0.2.1"]);
    submit(&client, &zone, &[(ChangeAction::Create, &www)])
        .await
        .expect("first CREATE");

    // InvalidChangeBatch: a typed variant, its message Route53's bracketed list.
    let conflict = rrset("www.example.com", 60, &["192.0.2.9"]);
    let err = submit(&client, &zone, &[(ChangeAction::Create, &conflict)])
        .await
        .unwrap_err();
    let service = err.into_service_error();
    assert_eq!(service.code(), Some("InvalidChangeBatch"));
    assert!(service.request_id().is_some_and(|id| !id.is_empty()));
    match &service {
        ChangeResourceRecordSetsError::InvalidChangeBatch(e) => assert_eq!(
            e.message(),
            Some(
                "[Tried to create resource record set [name='www.example.com.', type='A'] but it already exists]"
            )
        ),
        other => panic!("expected InvalidChangeBatch, got {other:?}"),
    }
    let stale = rrset("www.example.com", 300, &["192.0.2.1"]);
    let err = submit(&client, &zone, &[(ChangeAction::Delete, &stale)])
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, ChangeResourceRecordSetsError::InvalidChangeBatch(_)),
        "{err:?}"
    );
    assert!(
        err.message()
            .unwrap()
            .contains("do not match the current values")
    );

    // InvalidInput: a typed variant too.
    let mut no_ttl = www.clone();
    no_ttl.ttl = None;
    let err = submit(&client, &zone, &[(ChangeAction::Upsert, &no_ttl)])
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, ChangeResourceRecordSetsError::InvalidInput(_)),
        "{err:?}"
    );

    // Throttling: not modelled for this operation, so an unhandled error with the code.
    server.fail_next(1, Fault::Throttling);
    let err = submit(&client, &zone, &[(ChangeAction::Upsert, &www)])
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    let service = err.into_service_error();
    assert_eq!(service.code(), Some("Throttling"));
    assert_eq!(service.message(), Some("Rate exceeded"));

    server.fail_next(1, Fault::PriorRequestNotComplete);
    let err = submit(&client, &zone, &[(ChangeAction::Upsert, &www)])
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            err,
            ChangeResourceRecordSetsError::PriorRequestNotComplete(_)
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), Some("PriorRequestNotComplete"));

    server.fail_next(1, Fault::InternalError);
    let err = submit(&client, &zone, &[(ChangeAction::Upsert, &www)])
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(500));
    assert_eq!(err.into_service_error().code(), Some("InternalFailure"));

    server.fail_next(1, Fault::ServiceUnavailable);
    let err = submit(&client, &zone, &[(ChangeAction::Upsert, &www)])
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(503));
    assert_eq!(err.into_service_error().code(), Some("ServiceUnavailable"));

    // A dropped connection is a transport failure, not a service error.
    server.fail_next(1, Fault::Drop);
    let err = submit(&client, &zone, &[(ChangeAction::Upsert, &www)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        ),
        "{err:?}"
    );

    // NoSuchHostedZone: typed on every operation that names a zone.
    let err = submit(&client, "ZNOSUCHZONE", &[(ChangeAction::Create, &www)])
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, ChangeResourceRecordSetsError::NoSuchHostedZone(_)),
        "{err:?}"
    );
    let err = client
        .list_resource_record_sets()
        .hosted_zone_id("ZNOSUCHZONE")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, ListResourceRecordSetsError::NoSuchHostedZone(_)),
        "{err:?}"
    );
    let err = client
        .get_hosted_zone()
        .id("/hostedzone/ZNOSUCHZONE")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, GetHostedZoneError::NoSuchHostedZone(_)),
        "{err:?}"
    );
    assert_eq!(err.code(), Some("NoSuchHostedZone"));

    // Retries were off: each attempt reached the server once. The zone is untouched
    // by everything that failed.
    assert_eq!(server.stats().requests["ChangeResourceRecordSets"], 10);
    assert_eq!(server.values(&zone, "www.example.com", "A"), ["192.0.2.1"]);
}

#[tokio::test]
async fn sdk_pages_through_set_identifier_runs() {
    let server = Route53Server::start();
    let zone = server.create_zone("example.com");
    for i in 0..320 {
        let mut set = testkit::route53::RrSet::simple(
            "svc.example.com",
            "A",
            60,
            &[&format!("10.1.{}.{}", i / 200, i % 200)],
        );
        set.set_identifier = Some(format!("i-{i:04}"));
        set.multivalue_answer = Some(true);
        server.put_rrset(&zone, set);
    }
    let client = client(&server);
    let mut seen = Vec::new();
    let (mut name, mut rtype, mut identifier) = (None::<String>, None::<RrType>, None::<String>);
    for _ in 0..10 {
        let page = client
            .list_resource_record_sets()
            .hosted_zone_id(&zone)
            .set_start_record_name(name.clone())
            .set_start_record_type(rtype.clone())
            .set_start_record_identifier(identifier.clone())
            .send()
            .await
            .expect("ListResourceRecordSets");
        seen.extend(
            page.resource_record_sets()
                .iter()
                .map(|s| (s.name().to_owned(), s.set_identifier().map(str::to_owned))),
        );
        if !page.is_truncated() {
            break;
        }
        name = page.next_record_name().map(str::to_owned);
        rtype = page.next_record_type().cloned();
        identifier = page.next_record_identifier().map(str::to_owned);
        assert!(
            identifier.is_some(),
            "a page breaking inside a run names the next SetIdentifier"
        );
    }
    assert_eq!(seen.len(), 322, "NS, SOA and 320 members, each once");
    let expected: Vec<_> = server
        .rrsets(&zone)
        .into_iter()
        .map(|s| (s.name, s.set_identifier))
        .collect();
    assert_eq!(seen, expected);
    let multivalue = client
        .list_resource_record_sets()
        .hosted_zone_id(&zone)
        .start_record_name("svc.example.com")
        .max_items(1)
        .send()
        .await
        .unwrap();
    let first = &multivalue.resource_record_sets()[0];
    assert_eq!(first.multi_value_answer(), Some(true));
    assert_eq!(first.set_identifier(), Some("i-0000"));
}

#[tokio::test]
async fn signatures_are_checked_against_the_configured_key_pair() {
    let server = Route53Server::start();
    let zone = server.create_zone("example.com");
    server.set_credentials(Some(("AKIDTESTKIT", "right-secret")));
    let set = rrset("www.example.com", 60, &["192.0.2.1"]);
    let good = client_with(&server, "AKIDTESTKIT", "right-secret");
    submit(&good, &zone, &[(ChangeAction::Create, &set)])
        .await
        .expect("a correctly signed change");
    let listed = good
        .list_resource_record_sets()
        .hosted_zone_id(&zone)
        .start_record_name("*.example.com")
        .start_record_type(RrType::A)
        .max_items(2)
        .send()
        .await
        .expect("a signed request with a query string");
    assert_eq!(listed.resource_record_sets()[0].name(), "www.example.com.");

    let wrong_secret = client_with(&server, "AKIDTESTKIT", "wrong-secret");
    let err = submit(&wrong_secret, &zone, &[(ChangeAction::Upsert, &set)])
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    assert_eq!(
        err.into_service_error().code(),
        Some("SignatureDoesNotMatch")
    );
    let wrong_key = client_with(&server, "AKIDSOMEONEELSE", "right-secret");
    let err = wrong_key
        .get_hosted_zone()
        .id(&zone)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.into_service_error().code(),
        Some("InvalidClientTokenId")
    );
}

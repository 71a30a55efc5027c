//! What the clouds' unit tests share: a cloud's metadata stand-in, read
//! through the cloud's own [`Cloud`] implementation, and the checks every
//! cloud's tests make of it (an error names the cloud, the URL and what came
//! back; a malformed IPv6 address is refused, not silently dropped).

use testkit::imds::{CloudKind, ImdsFault, ImdsServer, Instance};

use super::{Cloud, Identity};

/// One cloud's stand-in and the instance it was started with.
pub struct Stand {
    pub imds: ImdsServer,
    /// The instance as served at the start (a test may change it since).
    pub want: Instance,
    cloud: &'static dyn Cloud,
}

impl Stand {
    /// `cloud`'s stand-in, serving the stand-in's example instance of it.
    pub fn example(cloud: &'static dyn Cloud) -> Stand {
        Stand::serving(cloud, |_| {})
    }

    /// `cloud`'s stand-in, serving its example instance as `change` leaves it.
    pub fn serving(cloud: &'static dyn Cloud, change: impl FnOnce(&mut Instance)) -> Stand {
        let kind = CloudKind::from_name(cloud.name()).expect("the stand-in plays this cloud");
        let mut want = Instance::example(kind);
        change(&mut want);
        Stand {
            imds: ImdsServer::start_cloud(kind, want.clone()),
            want,
            cloud,
        }
    }

    pub fn url(&self) -> String {
        self.imds.url()
    }

    /// Whether the cloud's probe recognises the stand-in.
    pub async fn probe(&self) -> bool {
        self.cloud.probe(Some(&self.url())).await
    }

    /// The identity read from the stand-in, which must be read.
    pub async fn identity(&self) -> Identity {
        self.cloud
            .identity(Some(&self.url()), "test")
            .await
            .unwrap()
    }

    /// The identity read from the stand-in, which must be this cloud's and
    /// carry the served instance's id.
    pub async fn identity_of_the_instance(&self) -> Identity {
        let id = self.identity().await;
        assert_eq!(id.cloud.to_string(), self.cloud.name());
        assert_eq!(id.instance_id, self.want.instance_id);
        id
    }

    /// Checks that `id` has the private IPv4 address the stand-in serves.
    pub fn has_the_private_ipv4(&self, id: &Identity) {
        assert_eq!(
            id.private_ipv4.map(|i| i.to_string()),
            Some(self.want.private_ipv4.clone())
        );
    }

    /// Checks that `id` has the public IPv4 address the stand-in serves, or
    /// none when it serves none.
    pub fn has_the_public_ipv4(&self, id: &Identity) {
        assert_eq!(id.public_ipv4.map(|i| i.to_string()), self.want.public_ipv4);
    }

    /// Makes the stand-in misbehave with `fault`, then checks that reading
    /// the identity fails as [`Stand::fails_naming`] says.
    pub async fn fault_is_named(&self, fault: ImdsFault, rest: &str) -> String {
        self.imds.set_fault(fault);
        self.fails_naming(rest).await
    }

    /// What reading the identity from the stand-in fails with, which must
    /// begin by naming the cloud, then the stand-in's URL followed by `rest`
    /// (the path and what came back).
    pub async fn fails_naming(&self, rest: &str) -> String {
        let e = failure(self.cloud, &self.url()).await;
        let head = format!("{} metadata: {}{rest}", self.cloud.name(), self.url());
        assert!(e.starts_with(&head), "{e}");
        e
    }

    /// Serves `ipv6` on the instance's interface and reads the identity, which
    /// must give it; the identity is returned for the cloud's own checks.
    pub async fn gives_the_ipv6(cloud: &'static dyn Cloud, ipv6: &str) -> (Stand, Identity) {
        let stand = Stand::serving(cloud, |i| i.ipv6 = Some(ipv6.into()));
        let id = stand.identity().await;
        assert_eq!(id.ipv6, Some(ipv6.parse().unwrap()));
        (stand, id)
    }

    /// Serves `bad` as the instance's IPv6 address: reading the identity must
    /// fail with exactly the error that names the cloud, the URL of `path`,
    /// and `shown`, what came back there.
    pub async fn refuses_the_ipv6(&self, bad: &str, path: &str, shown: &str) {
        self.imds.update_instance(|i| i.ipv6 = Some(bad.into()));
        let e = failure(self.cloud, &self.url()).await;
        assert_eq!(
            e,
            format!(
                "{} metadata: {}{path}: not an address: \"{shown}\"",
                self.cloud.name(),
                self.url()
            )
        );
    }
}

/// What reading the identity from `url` fails with, as printed.
pub async fn failure(cloud: &dyn Cloud, url: &str) -> String {
    cloud
        .identity(Some(url), "test")
        .await
        .unwrap_err()
        .to_string()
}

//! `dnsreg-testkit`: the stand-ins as a program, to try dnsreg without a cloud.
//!
//! `dnsreg-testkit serve` starts the Route53 and instance metadata stand-ins on
//! loopback (the metadata one plays EC2 by default, another cloud with
//! `--cloud`; the Cloudflare API one with `--cloudflare`), creates the requested hosted zones, prints where they listen and
//! the environment that points dnsreg (or the AWS CLI) at them, and serves until
//! SIGINT or SIGTERM. Arguments are few and parsed by hand.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use std::sync::Arc;
use testkit::cloudflare::CloudflareServer;
use testkit::imds::{AwsInstance, CloudKind, ImdsServer, Instance};
use testkit::route53::Route53Server;

mod control;

const USAGE: &str = "\
dnsreg-testkit: strict local stand-ins for the services dnsreg talks to

USAGE:
    dnsreg-testkit serve [OPTIONS]
    dnsreg-testkit --help

Starts the Route53 and EC2 instance metadata (IMDSv2) stand-ins on loopback,
prints one line per server and the environment to export, then serves until
SIGINT or SIGTERM. State lives in memory and is gone when the program stops.

OPTIONS:
    --route53 ADDR|off        Route53 API address [default: 127.0.0.1:18053]
    --zone NAME               create this hosted zone (repeatable)
    --imds ADDR|off           instance metadata address [default: 127.0.0.1:18054]
    --cloud NAME              the metadata service to play: aws, gcp, azure,
                              digitalocean, hetzner, openstack, oracle, alibaba
                              [default: aws]; the instance options below
                              override that cloud's example instance
    --instance-id ID          [default: i-0123456789abcdef0]
    --region REGION           the instance's region, also AWS_REGION [default: us-east-1]
    --availability-zone AZ    [default: the region followed by 'a']
    --local-ipv4 IP           [default: 10.0.0.5]
    --public-ipv4 IP|none     [default: 203.0.113.7]
    --ipv6 IP                 give the instance an IPv6 address [default: none]
    --imdsv1                  also answer requests without an IMDSv2 token
                              (aws; on alibaba, allow normal mode)
    --cloudflare ADDR|off     Cloudflare API v4 address [default: off]; the API base
                              is http://ADDR/client/v4
    --cloudflare-zone NAME    create this Cloudflare zone (repeatable)
    --cloudflare-token TOKEN  the API token it accepts, with DNS:Edit on every
                              zone [default: dnsreg-testkit-token]
    --control ADDR            serve a plain-text control API on ADDR (post a
                              termination notice, read the zones back; GET / on
                              it lists the requests) [default: off]
    --ready-file PATH         once listening, write the environment lines to PATH
                              (scripts wait for it); removed on exit
    -h, --help                print this help

A port of 0 picks a free port. Inspect the zones with the AWS CLI, e.g.
    aws route53 list-resource-record-sets --hosted-zone-id ZONE_ID
after exporting the printed environment.
";

/// What `serve` was asked to do.
#[derive(Debug)]
struct Serve {
    route53: Option<SocketAddr>,
    zones: Vec<String>,
    imds: Option<SocketAddr>,
    /// The cloud the metadata stand-in plays.
    cloud: CloudKind,
    /// The instance when the cloud is AWS.
    instance: AwsInstance,
    /// The instance for the other clouds: the example, with the options applied.
    cloud_instance: Instance,
    imdsv1: bool,
    ready_file: Option<PathBuf>,
    cloudflare: Option<SocketAddr>,
    cloudflare_zones: Vec<String>,
    cloudflare_token: String,
    /// Where the control API listens, if anywhere.
    control: Option<SocketAddr>,
}

/// The token `--cloudflare` accepts unless `--cloudflare-token` says otherwise.
const DEFAULT_CLOUDFLARE_TOKEN: &str = "dnsreg-testkit-token";

#[derive(Debug)]
enum Command {
    Help,
    Serve(Box<Serve>),
}

fn main() -> ExitCode {
    let command = match parse(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(problem) => {
            eprintln!("dnsreg-testkit: {problem}\nTry 'dnsreg-testkit --help'.");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Command::Serve(serve) => match run(*serve) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("dnsreg-testkit: {error:#}");
                ExitCode::from(1)
            }
        },
    }
}

/// Reads the command line; the error is a usage problem, worded for the user.
fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut args = args.into_iter();
    match args.next().as_deref() {
        Some("serve") => {}
        Some("-h" | "--help" | "help") => return Ok(Command::Help),
        Some(other) => {
            return Err(format!(
                "unknown command '{other}' (the only command is 'serve')"
            ));
        }
        None => return Err("missing command: try 'dnsreg-testkit serve'".to_owned()),
    }

    let mut route53 = Some(SocketAddr::from(([127, 0, 0, 1], 18053)));
    let mut imds = Some(SocketAddr::from(([127, 0, 0, 1], 18054)));
    let mut zones = Vec::new();
    let mut instance = AwsInstance::default();
    let mut availability_zone = None;
    let mut cloud = CloudKind::Aws;
    // The instance options as given, to apply to another cloud's example.
    let mut given = Instance {
        instance_id: String::new(),
        hostname: String::new(),
        region: String::new(),
        zone: String::new(),
        private_ipv4: String::new(),
        public_ipv4: None,
        ipv6: None,
    };
    let mut public_given = false;
    let mut imdsv1 = false;
    let mut ready_file = None;
    let mut cloudflare = None;
    let mut cloudflare_zones = Vec::new();
    let mut cloudflare_token = None;
    let mut control = None;
    // Whether an instance option was given, to refuse them when IMDS is off.
    let mut instance_option = None;

    while let Some(arg) = args.next() {
        // Both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let takes_value = match flag.as_str() {
            "--route53"
            | "--imds"
            | "--cloudflare"
            | "--cloudflare-zone"
            | "--cloudflare-token"
            | "--zone"
            | "--ready-file"
            | "--control"
            | "--cloud"
            | "--instance-id"
            | "--region"
            | "--availability-zone"
            | "--local-ipv4"
            | "--public-ipv4"
            | "--ipv6" => true,
            "--imdsv1" | "-h" | "--help" => false,
            _ => return Err(format!("unknown option '{flag}'")),
        };
        let value = if takes_value {
            match inline.or_else(|| args.next()) {
                Some(value) => value,
                None => return Err(format!("{flag} needs a value")),
            }
        } else if inline.is_some() {
            return Err(format!("{flag} takes no value"));
        } else {
            String::new()
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--route53" => route53 = address_or_off(&flag, &value)?,
            "--imds" => imds = address_or_off(&flag, &value)?,
            "--zone" => zones.push(zone_name(&value)?),
            "--cloudflare" => cloudflare = address_or_off(&flag, &value)?,
            "--cloudflare-zone" => cloudflare_zones
                .push(zone_name(&value).map_err(|e| e.replacen("--zone", "--cloudflare-zone", 1))?),
            "--cloudflare-token" => {
                if value.is_empty()
                    || !value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err(format!(
                        "--cloudflare-token '{value}' is not a token (letters, digits, '-' and '_')"
                    ));
                }
                cloudflare_token = Some(value);
            }
            "--ready-file" => ready_file = Some(PathBuf::from(value)),
            "--control" => control = address_or_off(&flag, &value)?,
            "--imdsv1" => {
                imdsv1 = true;
                instance_option = Some(flag);
            }
            "--cloud" => {
                cloud = CloudKind::from_name(&value).ok_or_else(|| {
                    format!(
                        "--cloud '{value}' is not one of aws, gcp, azure, digitalocean, hetzner, openstack, oracle, alibaba"
                    )
                })?;
                instance_option = Some(flag);
            }
            "--instance-id" => {
                instance.instance_id = value.clone();
                given.instance_id = value;
                instance_option = Some(flag);
            }
            // Also AWS_REGION, so it is fine without the metadata stand-in.
            "--region" => {
                instance.region = value.clone();
                given.region = value;
            }
            "--availability-zone" => {
                given.zone = value.clone();
                availability_zone = Some(value);
                instance_option = Some(flag);
            }
            "--local-ipv4" => {
                instance.local_ipv4 = ip::<Ipv4Addr>(&flag, &value)?;
                given.private_ipv4 = instance.local_ipv4.clone();
                instance_option = Some(flag);
            }
            "--public-ipv4" => {
                instance.public_ipv4 = if value == "none" {
                    None
                } else {
                    Some(ip::<Ipv4Addr>(&flag, &value)?)
                };
                given.public_ipv4 = instance.public_ipv4.clone();
                public_given = true;
                instance_option = Some(flag);
            }
            "--ipv6" => {
                instance.ipv6 = Some(ip::<Ipv6Addr>(&flag, &value)?);
                given.ipv6 = instance.ipv6.clone();
                instance_option = Some(flag);
            }
            _ => unreachable!("{flag} is one of the options matched above"),
        }
    }

    if cloudflare.is_none() && (!cloudflare_zones.is_empty() || cloudflare_token.is_some()) {
        return Err(
            "--cloudflare-zone and --cloudflare-token need the Cloudflare stand-in: add --cloudflare ADDR"
                .to_owned(),
        );
    }
    if route53.is_none() && imds.is_none() && cloudflare.is_none() {
        return Err("--route53 off and --imds off leave nothing to serve".to_owned());
    }
    if route53.is_none() && !zones.is_empty() {
        return Err("--zone needs the Route53 stand-in, but --route53 is off".to_owned());
    }
    if let (None, Some(option)) = (imds, &instance_option) {
        return Err(format!(
            "{option} describes the instance, but --imds is off"
        ));
    }
    if cloud == CloudKind::Aws && !instance.instance_id.starts_with("i-") {
        return Err(format!(
            "--instance-id '{}' does not look like an EC2 instance id (i-...)",
            instance.instance_id
        ));
    }
    if imdsv1 && !matches!(cloud, CloudKind::Aws | CloudKind::Alibaba) {
        return Err(format!(
            "--imdsv1 is for aws and alibaba, not --cloud {}",
            cloud.name()
        ));
    }
    instance.availability_zone =
        availability_zone.unwrap_or_else(|| format!("{}a", instance.region));
    instance.hostname = private_dns_name(&instance.local_ipv4, &instance.region);
    let mut cloud_instance = Instance::example(cloud);
    for (value, field) in [
        (given.instance_id, &mut cloud_instance.instance_id),
        (given.region, &mut cloud_instance.region),
        (given.zone, &mut cloud_instance.zone),
        (given.private_ipv4, &mut cloud_instance.private_ipv4),
    ] {
        if !value.is_empty() {
            *field = value;
        }
    }
    if public_given {
        cloud_instance.public_ipv4 = given.public_ipv4;
    }
    if given.ipv6.is_some() {
        cloud_instance.ipv6 = given.ipv6;
    }
    Ok(Command::Serve(Box::new(Serve {
        route53,
        zones,
        imds,
        cloud,
        instance,
        cloud_instance,
        imdsv1,
        ready_file,
        cloudflare,
        cloudflare_zones,
        cloudflare_token: cloudflare_token.unwrap_or_else(|| DEFAULT_CLOUDFLARE_TOKEN.to_owned()),
        control,
    })))
}

fn address_or_off(flag: &str, value: &str) -> Result<Option<SocketAddr>, String> {
    if value == "off" {
        return Ok(None);
    }
    let addr: SocketAddr = value.parse().map_err(|_| {
        format!("{flag} '{value}' is not an address like 127.0.0.1:18053 (or 'off')")
    })?;
    Ok(Some(addr))
}

fn ip<T: std::str::FromStr + Into<IpAddr>>(flag: &str, value: &str) -> Result<String, String> {
    let addr: T = value
        .parse()
        .map_err(|_| format!("{flag} '{value}' is not a valid address"))?;
    Ok(addr.into().to_string())
}

fn zone_name(value: &str) -> Result<String, String> {
    let name = value.trim_end_matches('.');
    if name.is_empty() || name.split('.').any(str::is_empty) {
        return Err(format!(
            "--zone '{value}' is not a domain name like example.com"
        ));
    }
    Ok(name.to_owned())
}

/// EC2's private DNS name for an address: `ip-10-0-0-5.ec2.internal` in
/// us-east-1, `ip-10-0-0-5.<region>.compute.internal` elsewhere.
fn private_dns_name(local_ipv4: &str, region: &str) -> String {
    let dashed = local_ipv4.replace('.', "-");
    if region == "us-east-1" {
        format!("ip-{dashed}.ec2.internal")
    } else {
        format!("ip-{dashed}.{region}.compute.internal")
    }
}

fn run(serve: Serve) -> anyhow::Result<()> {
    let mut environment = String::new();
    let mut stdout = std::io::stdout().lock();

    if let Some(path) = &serve.ready_file {
        // A file left by an earlier run must not announce servers not yet up.
        let _ = std::fs::remove_file(path);
    }
    // Started here, stopped when they go out of scope at the end of `run`.
    let route53 = match serve.route53 {
        Some(addr) => Some(Arc::new(Route53Server::start_on(addr).with_context(|| {
            format!("starting the Route53 stand-in on {addr} (choose another address with --route53, port 0 for any)")
        })?)),
        None => None,
    };
    let imds = match serve.imds {
        Some(addr) => Some(Arc::new(match serve.cloud {
            CloudKind::Aws => ImdsServer::start_on(addr, serve.instance.clone()),
            cloud => ImdsServer::start_cloud_on(addr, cloud, serve.cloud_instance.clone()),
        }.with_context(|| {
            format!("starting the metadata stand-in on {addr} (choose another address with --imds, port 0 for any)")
        })?)),
        None => None,
    };
    let cloudflare = match serve.cloudflare {
        Some(addr) => Some(Arc::new(CloudflareServer::start_on(addr).with_context(|| {
            format!("starting the Cloudflare stand-in on {addr} (choose another address with --cloudflare, port 0 for any)")
        })?)),
        None => None,
    };

    // `(name, id)` of each Cloudflare zone, for the control API.
    let mut cloudflare_zones = Vec::new();
    if let Some(route53) = &route53 {
        let zones: Vec<String> = serve
            .zones
            .iter()
            .map(|zone| format!("{zone}={}", route53.create_zone(zone)))
            .collect();
        let zones = if zones.is_empty() {
            "none".to_owned()
        } else {
            zones.join(" ")
        };
        writeln!(stdout, "route53 {} zones: {zones}", route53.url())?;
        writeln!(
            environment,
            "export AWS_ENDPOINT_URL_ROUTE_53={}",
            route53.url()
        )?;
    }
    if let Some(cloudflare) = &cloudflare {
        cloudflare.add_token(&serve.cloudflare_token, true);
        for zone in &serve.cloudflare_zones {
            cloudflare_zones.push((zone.to_ascii_lowercase(), cloudflare.create_zone(zone)));
        }
        let zones: Vec<String> = cloudflare_zones
            .iter()
            .map(|(zone, id)| format!("{zone}={id}"))
            .collect();
        let zones = if zones.is_empty() {
            "none".to_owned()
        } else {
            zones.join(" ")
        };
        writeln!(stdout, "cloudflare {} zones: {zones}", cloudflare.url())?;
        writeln!(
            environment,
            "export CLOUDFLARE_API_TOKEN={}\nexport CLOUDFLARE_BASE_URL={}",
            serve.cloudflare_token,
            cloudflare.url()
        )?;
        // dnsreg takes the endpoint from its configuration; commented so that
        // the ready file stays a valid shell script.
        writeln!(
            environment,
            "# dnsreg.toml [[provider]] type = \"cloudflare\": endpoint = \"{}\"",
            cloudflare.url()
        )?;
    }
    if let Some(imds) = imds.as_ref().filter(|_| serve.cloud != CloudKind::Aws) {
        if serve.imdsv1 {
            imds.allow_imdsv1(true);
        }
        let instance = &serve.cloud_instance;
        writeln!(
            stdout,
            "imds {} {} instance {} hostname {} region {} zone {} private {} public {} ipv6 {}",
            imds.url(),
            serve.cloud.name(),
            instance.instance_id,
            instance.hostname,
            instance.region,
            instance.zone,
            instance.private_ipv4,
            instance.public_ipv4.as_deref().unwrap_or("none"),
            instance.ipv6.as_deref().unwrap_or("none"),
        )?;
        // Not an environment variable: a line for dnsreg's configuration,
        // commented so that the ready file stays a valid shell script.
        writeln!(
            environment,
            "# dnsreg.toml [instance]: metadata = \"{}\", metadata_endpoint = \"{}\"",
            serve.cloud.name(),
            imds.url()
        )?;
    }
    if let Some(imds) = imds.as_ref().filter(|_| serve.cloud == CloudKind::Aws) {
        imds.allow_imdsv1(serve.imdsv1);
        let instance = &serve.instance;
        writeln!(
            stdout,
            "imds {} aws instance {} region {} az {} private {} public {} ipv6 {} ({})",
            imds.url(),
            instance.instance_id,
            instance.region,
            instance.availability_zone,
            instance.local_ipv4,
            instance.public_ipv4.as_deref().unwrap_or("none"),
            instance.ipv6.as_deref().unwrap_or("none"),
            if serve.imdsv1 {
                "IMDSv1 and IMDSv2"
            } else {
                "IMDSv2 only"
            },
        )?;
        writeln!(
            environment,
            "export AWS_EC2_METADATA_SERVICE_ENDPOINT={}",
            imds.url()
        )?;
    }
    // Started last, so that it reaches every stand-in that runs; stopped when
    // it goes out of scope at the end of `run`.
    let _control = match serve.control {
        Some(addr) => {
            let running = control::start(
                addr,
                control::Handles {
                    route53: route53.clone(),
                    imds: imds.clone(),
                    cloudflare: cloudflare.clone(),
                    cloudflare_zones,
                },
            )
            .with_context(|| {
                format!("starting the control API on {addr} (choose another address with --control, port 0 for any)")
            })?;
            writeln!(
                stdout,
                "control {} (GET / lists what it does)",
                running.url()
            )?;
            writeln!(
                environment,
                "export DNSREG_TESTKIT_CONTROL={}",
                running.url()
            )?;
            Some(running)
        }
        None => None,
    };
    // The key pair the Route53 stand-in verifies SigV4 signatures with.
    let (key, secret) = testkit::route53::TEST_CREDENTIALS;
    writeln!(
        environment,
        "export AWS_ACCESS_KEY_ID={key}\nexport AWS_SECRET_ACCESS_KEY={secret}"
    )?;
    // AWS_DEFAULT_REGION too: the AWS CLI v1 reads only that one.
    let region = &serve.instance.region;
    writeln!(
        environment,
        "export AWS_REGION={region}\nexport AWS_DEFAULT_REGION={region}"
    )?;
    write!(stdout, "{environment}")?;
    stdout.flush()?;
    drop(stdout);

    if let Some(path) = &serve.ready_file {
        write_atomically(path, &environment)?;
    }
    eprintln!("dnsreg-testkit: serving until SIGINT or SIGTERM");
    let waited = wait_for_signal();
    if let Some(path) = &serve.ready_file {
        let _ = std::fs::remove_file(path);
    }
    waited
}

/// Writes beside the target and renames, so a waiting script never reads half a file.
fn write_atomically(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    std::fs::write(&temporary, contents)
        .and_then(|()| std::fs::rename(&temporary, path))
        .with_context(|| format!("writing the ready file {}", path.display()))
}

fn wait_for_signal() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal watcher")?;
    runtime.block_on(async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("listening for SIGTERM")?;
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted.context("listening for SIGINT")?,
            _ = terminate.recv() => {}
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(|arg| (*arg).to_owned()))
    }

    fn serve(args: &[&str]) -> Serve {
        match parse_args(args) {
            Ok(Command::Serve(serve)) => *serve,
            other => panic!("{args:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn defaults_start_both_on_fixed_ports() {
        let serve = serve(&["serve"]);
        assert_eq!(serve.route53, Some("127.0.0.1:18053".parse().unwrap()));
        assert_eq!(serve.imds, Some("127.0.0.1:18054".parse().unwrap()));
        assert_eq!(serve.instance.hostname, "ip-10-0-0-5.ec2.internal");
        assert!(!serve.imdsv1);
        assert_eq!(serve.cloudflare, None, "Cloudflare is off unless asked for");
    }

    #[test]
    fn cloudflare_options() {
        let parsed = serve(&[
            "serve",
            "--cloudflare=127.0.0.1:0",
            "--cloudflare-zone",
            "example.com.",
            "--cloudflare-zone=example.org",
        ]);
        assert_eq!(parsed.cloudflare, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(parsed.cloudflare_zones, ["example.com", "example.org"]);
        assert_eq!(parsed.cloudflare_token, DEFAULT_CLOUDFLARE_TOKEN);
        let only = serve(&[
            "serve",
            "--route53",
            "off",
            "--imds",
            "off",
            "--cloudflare",
            "127.0.0.1:0",
            "--cloudflare-token",
            "abc_123",
        ]);
        assert_eq!(only.cloudflare_token, "abc_123");
        for (args, expected) in [
            (
                &["serve", "--cloudflare-zone", "example.com"][..],
                "add --cloudflare",
            ),
            (&["serve", "--cloudflare-token", "t"], "add --cloudflare"),
            (&["serve", "--cloudflare", "nowhere"], "not an address"),
            (
                &[
                    "serve",
                    "--cloudflare",
                    "127.0.0.1:0",
                    "--cloudflare-zone",
                    "a..b",
                ],
                "--cloudflare-zone 'a..b' is not a domain name",
            ),
            (
                &[
                    "serve",
                    "--cloudflare",
                    "127.0.0.1:0",
                    "--cloudflare-token",
                    "a b",
                ],
                "is not a token",
            ),
        ] {
            let problem = parse_args(args).expect_err(&format!("{args:?} must be refused"));
            assert!(problem.contains(expected), "{args:?}: {problem}");
        }
    }

    #[test]
    fn options_in_both_spellings() {
        let serve = serve(&[
            "serve",
            "--zone",
            "example.com.",
            "--zone=example.org",
            "--imds=127.0.0.1:0",
            "--route53=127.0.0.1:0",
            "--region",
            "eu-west-1",
            "--local-ipv4",
            "172.31.5.6",
            "--public-ipv4=none",
            "--ipv6",
            "2001:db8::1",
            "--imdsv1",
            "--ready-file",
            "/tmp/ready",
        ]);
        assert_eq!(serve.route53, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(serve.zones, ["example.com", "example.org"]);
        assert_eq!(serve.imds, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(serve.instance.availability_zone, "eu-west-1a");
        assert_eq!(
            serve.instance.hostname,
            "ip-172-31-5-6.eu-west-1.compute.internal"
        );
        assert_eq!(serve.instance.public_ipv4, None);
        assert_eq!(serve.instance.ipv6.as_deref(), Some("2001:db8::1"));
        assert!(serve.imdsv1);
        assert_eq!(serve.ready_file, Some(PathBuf::from("/tmp/ready")));
    }

    #[test]
    fn control_is_off_unless_asked_for() {
        assert_eq!(serve(&["serve"]).control, None);
        assert_eq!(
            serve(&["serve", "--control", "127.0.0.1:0"]).control,
            Some("127.0.0.1:0".parse().unwrap())
        );
        let problem = parse_args(&["serve", "--control", "here"]).expect_err("not an address");
        assert!(
            problem.contains("--control 'here' is not an address"),
            "{problem}"
        );
    }

    #[test]
    fn either_server_can_be_left_out() {
        assert_eq!(serve(&["serve", "--route53", "off"]).route53, None);
        let only_route53 = serve(&["serve", "--imds", "off", "--region", "eu-west-1"]);
        assert_eq!(
            (only_route53.imds, only_route53.instance.region.as_str()),
            (None, "eu-west-1")
        );
    }

    #[test]
    fn usage_errors_say_what_is_wrong() {
        for (args, expected) in [
            (&["serve", "--bogus"][..], "unknown option '--bogus'"),
            (&["serve", "--zone"], "--zone needs a value"),
            (&["serve", "--imdsv1=yes"], "--imdsv1 takes no value"),
            (
                &["serve", "--public-ipv4", "999.1.1.1"],
                "not a valid address",
            ),
            (&["serve", "--route53", "localhost"], "not an address"),
            (
                &["serve", "--route53", "off", "--zone", "example.com"],
                "--route53 is off",
            ),
            (
                &["serve", "--imds", "off", "--instance-id", "i-1"],
                "--imds is off",
            ),
            (
                &["serve", "--route53", "off", "--imds", "off"],
                "nothing to serve",
            ),
            (&["serve", "--zone", "a..b"], "not a domain name"),
            (&["serve", "--instance-id", "web-1"], "instance id"),
            (&["frobnicate"], "unknown command"),
            (&[], "missing command"),
        ] {
            let problem = parse_args(args).expect_err(&format!("{args:?} must be refused"));
            assert!(problem.contains(expected), "{args:?}: {problem}");
        }
    }

    #[test]
    fn cloud_plays_its_example_with_the_options_applied() {
        let serve = serve(&[
            "serve",
            "--cloud",
            "gcp",
            "--instance-id",
            "99",
            "--public-ipv4",
            "none",
            "--local-ipv4=10.128.0.9",
        ]);
        assert_eq!(serve.cloud, CloudKind::Gcp);
        let expected = Instance {
            instance_id: "99".to_owned(),
            private_ipv4: "10.128.0.9".to_owned(),
            public_ipv4: None,
            ..Instance::example(CloudKind::Gcp)
        };
        assert_eq!(serve.cloud_instance, expected);
        assert_eq!(self::serve(&["serve"]).cloud, CloudKind::Aws);
        assert_eq!(
            self::serve(&["serve", "--cloud=alibaba", "--imdsv1"]).cloud,
            CloudKind::Alibaba
        );
    }

    #[test]
    fn cloud_usage_errors() {
        for (args, expected) in [
            (&["serve", "--cloud", "ibm"][..], "is not one of aws"),
            (
                &["serve", "--cloud", "gcp", "--imdsv1"],
                "--imdsv1 is for aws",
            ),
            (
                &["serve", "--imds", "off", "--cloud", "gcp"],
                "--imds is off",
            ),
        ] {
            let problem = parse_args(args).expect_err(&format!("{args:?} must be refused"));
            assert!(problem.contains(expected), "{args:?}: {problem}");
        }
    }

    #[test]
    fn help_anywhere() {
        assert!(matches!(parse_args(&["--help"]), Ok(Command::Help)));
        assert!(matches!(
            parse_args(&["serve", "--zone", "example.com", "-h"]),
            Ok(Command::Help)
        ));
    }
}

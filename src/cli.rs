//! The command line (docs/design.md, "The contract"): commands, global options,
//! and the flags that let one-shot commands run without a configuration file.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{self, Flags};

/// The version and the revision it was built from: "0.1.0 (ad46e9a)".
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("DNSREG_REVISION"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "dnsreg",
    version = VERSION,
    about = "Publish this machine's DNS records, keep them true, remove exactly them again"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(short, long, global = true, value_name = "FILE", default_value = config::DEFAULT_PATH)]
    pub config: PathBuf,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,

    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Less log output (warnings and errors only).
    #[arg(short, long, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// The journal's own protocol when stderr is the journal (under systemd), else text.
    Auto,
    Text,
    Json,
    /// The journal's own protocol: priorities and fields (DNSREG_PROVIDER=, ...).
    Journal,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The agent: join, keep records true, leave on SIGTERM/SIGINT.
    Run,
    /// Publish this instance's records; exit 0 when every provider has them live.
    Join(ChangeArgs),
    /// Remove this instance's records (also those of an earlier address).
    Leave(ChangeArgs),
    /// Show what a join (or --leave) would add, remove and leave alone, writing nothing;
    /// exit 0 if nothing would change, 3 if something would.
    Plan(PlanArgs),
    /// Show whether each record this instance should have is there (exit 1 if not).
    Status {
        #[command(flatten)]
        records: RecordArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate the configuration without touching the network.
    Check,
    /// Remove the records of instances whose lease expired (crashed or vanished machines).
    Reap,
    /// Show what instance metadata says about this machine.
    Whoami {
        #[command(flatten)]
        instance: InstanceArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Find a service by DNS (SRV, DNS-SD or A/AAAA) and print host:port lines.
    Discover(DiscoverArgs),
    /// Print the shell completion script for SHELL (see README for where it goes).
    Completions {
        #[arg(value_enum, value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (dnsreg.1 and one per command) into DIR, for packaging.
    Manpages {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

/// How long `discover --wait` asks when given no TIMEOUT: long enough for a
/// machine booted at the same time to come up and publish.
pub const DEFAULT_WAIT: &str = "5m";

/// `dnsreg discover`: the client side, reading what instances publish.
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// An SRV name (_v1._theservice._tcp.example.com), a DNS-SD service type
    /// (_http._tcp.example.com) or a host name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Print a JSON array of objects instead of lines.
    #[arg(long)]
    pub json: bool,
    /// Print one endpoint: the RFC 2782 weighted pick (the first of the order).
    #[arg(long)]
    pub one: bool,
    /// Ask again until the service appears, for at most TIMEOUT (e.g. 30s,
    /// 5m; 5m when --wait is given alone, after NAME or before another option).
    #[arg(
        long,
        value_name = "TIMEOUT",
        num_args = 0..=1,
        default_missing_value = DEFAULT_WAIT
    )]
    pub wait: Option<String>,
    /// Ask this DNS server only (IP or IP:PORT, port 53 by default) instead of /etc/resolv.conf's.
    #[arg(long, value_name = "ADDR")]
    pub server: Option<String>,
    /// The port to print after plain A/AAAA addresses (SRV and DNS-SD carry their own).
    #[arg(long)]
    pub port: Option<u16>,
    /// Resolve SRV targets: print address:port lines (JSON: an `addresses` field).
    #[arg(long)]
    pub resolve: bool,
    /// Ask by multicast DNS on the local segment (RFC 6762), as for any NAME under .local.
    #[arg(long, conflicts_with = "server")]
    pub mdns: bool,
    /// Keep only the DNS-SD instance called NAME (the first label of
    /// `<Instance>.<Service>.<Domain>`, as published: spaces and dots included).
    #[arg(long, value_name = "NAME")]
    pub instance: Option<String>,
    /// Multicast DNS: ask on this network interface only (default: every
    /// interface that is up, can multicast and has an address).
    #[arg(long, value_name = "IFACE")]
    pub interface: Option<String>,
}

/// `join` and `leave`.
#[derive(Debug, Args, Default)]
pub struct ChangeArgs {
    #[command(flatten)]
    pub records: RecordArgs,
    /// Return once every provider has accepted the change, without waiting
    /// until it is live on all its servers (Route53: PENDING, not yet INSYNC).
    #[arg(long)]
    pub no_wait: bool,
    /// Change nothing: show what would be added, removed and left alone, as `dnsreg plan` does.
    #[arg(long, conflicts_with = "no_wait")]
    pub dry_run: bool,
    /// With --dry-run: print JSON.
    #[arg(long, requires = "dry_run")]
    pub json: bool,
}

/// `plan`: a dry run of `join` or `leave`.
#[derive(Debug, Args, Default)]
pub struct PlanArgs {
    #[command(flatten)]
    pub records: RecordArgs,
    /// What a leave would do, instead of a join.
    #[arg(long)]
    pub leave: bool,
    /// Print JSON: per provider add, remove, keep_foreign, keep_others, owned (record lines).
    #[arg(long)]
    pub json: bool,
}

/// The main settings as flags; with `--provider` no configuration file is read.
#[derive(Debug, Args, Default)]
pub struct RecordArgs {
    /// Provider type (route53, cloudflare or rfc2136); its presence means "configure from flags".
    #[arg(long, value_name = "TYPE")]
    pub provider: Option<String>,
    /// The zone's name.
    #[arg(long, value_name = "NAME")]
    pub zone: Option<String>,
    /// The hosted zone id, instead of --zone.
    #[arg(long, value_name = "ID")]
    pub zone_id: Option<String>,
    /// Route53 routing: simple (shared rrsets) or multivalue (one rrset per instance).
    #[arg(long, value_name = "MODE")]
    pub routing: Option<String>,
    /// Provider API endpoint URL.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// rfc2136: the primary server taking updates (IP, IP:PORT or HOST:PORT).
    #[arg(long, value_name = "ADDR")]
    pub server: Option<String>,
    /// rfc2136: the TSIG key file, in the format tsig-keygen writes and nsupdate -k reads.
    #[arg(long, value_name = "FILE")]
    pub tsig_key_file: Option<String>,
    /// SRV name to join (e.g. _v1._theservice._tcp); also publishes the host record {ipv4_dashed}.
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// The port of the SRV record.
    #[arg(long)]
    pub port: Option<u16>,
    /// A round-robin name to join (repeatable).
    #[arg(long = "name", value_name = "NAME")]
    pub names: Vec<String>,
    /// A host name owned by this instance (repeatable; a template such as "{instance_id}").
    #[arg(long = "host", value_name = "NAME")]
    pub hosts: Vec<String>,
    /// TTL of the records.
    #[arg(long)]
    pub ttl: Option<u32>,
    /// Directory of the state file.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<String>,
    #[command(flatten)]
    pub instance: InstanceArgs,
}

/// Where the instance's identity comes from.
#[derive(Debug, Args, Default)]
pub struct InstanceArgs {
    /// Metadata source: auto, aws or none.
    #[arg(long, value_name = "SOURCE")]
    pub metadata: Option<String>,
    /// Metadata service URL (for proxies and tests).
    #[arg(long, value_name = "URL")]
    pub metadata_endpoint: Option<String>,
    /// Which address to publish: public or private.
    #[arg(long, value_name = "KIND")]
    pub address: Option<String>,
    /// Instance id override.
    #[arg(long, value_name = "ID")]
    pub instance_id: Option<String>,
    /// IPv4 address override.
    #[arg(long, value_name = "ADDR")]
    pub ipv4: Option<String>,
    /// Also publish AAAA records when the instance has IPv6.
    #[arg(long)]
    pub ipv6: bool,
}

impl InstanceArgs {
    /// The `[instance]` flags as configuration input.
    pub fn flags(&self) -> Flags {
        Flags {
            metadata: self.metadata.clone(),
            metadata_endpoint: self.metadata_endpoint.clone(),
            address: self.address.clone(),
            instance_id: self.instance_id.clone(),
            ipv4: self.ipv4.clone(),
            ipv6: self.ipv6,
            ..Flags::default()
        }
    }
}

impl RecordArgs {
    /// The flags as configuration input, when `--provider` was given.
    pub fn flags(&self) -> Option<Flags> {
        let provider = self.provider.clone()?;
        Some(Flags {
            provider,
            zone: self.zone.clone(),
            zone_id: self.zone_id.clone(),
            routing: self.routing.clone(),
            endpoint: self.endpoint.clone(),
            server: self.server.clone(),
            tsig_key_file: self.tsig_key_file.clone(),
            service: self.service.clone(),
            port: self.port,
            names: self.names.clone(),
            hosts: self.hosts.clone(),
            ttl: self.ttl,
            state_dir: self.state_dir.clone(),
            ..self.instance.flags()
        })
    }

    /// Record flags given without `--provider`: a mistake worth saying.
    pub fn stray(&self) -> Option<&'static str> {
        if self.provider.is_some() {
            return None;
        }
        [
            (self.zone.is_some(), "--zone"),
            (self.zone_id.is_some(), "--zone-id"),
            (self.routing.is_some(), "--routing"),
            (self.endpoint.is_some(), "--endpoint"),
            (self.server.is_some(), "--server"),
            (self.tsig_key_file.is_some(), "--tsig-key-file"),
            (self.service.is_some(), "--service"),
            (self.port.is_some(), "--port"),
            (!self.names.is_empty(), "--name"),
            (!self.hosts.is_empty(), "--host"),
            (self.ttl.is_some(), "--ttl"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn discover_wait_takes_its_timeout_or_none() {
        let wait = |args: &[&str]| {
            let cli = Cli::try_parse_from(["dnsreg", "discover"].iter().chain(args)).unwrap();
            let Command::Discover(d) = cli.command else {
                panic!("not discover")
            };
            (d.name, d.wait)
        };
        let name = "_http._tcp.local".to_string();
        assert_eq!(
            wait(&["--wait", "--one", "_http._tcp.local"]),
            (name.clone(), Some(DEFAULT_WAIT.to_string()))
        );
        assert_eq!(
            wait(&["_http._tcp.local", "--wait"]),
            (name.clone(), Some(DEFAULT_WAIT.to_string()))
        );
        assert_eq!(
            wait(&["--wait", "30s", "_http._tcp.local"]),
            (name.clone(), Some("30s".to_string()))
        );
        assert_eq!(wait(&["_http._tcp.local"]), (name, None));
    }

    #[test]
    fn the_original_scripts_invocation_becomes_flags() {
        let cli = Cli::try_parse_from([
            "dnsreg",
            "join",
            "--provider",
            "route53",
            "--zone",
            "unilans.net",
            "--service",
            "_v1._theservice._tcp",
            "--port",
            "8080",
        ])
        .unwrap();
        let Command::Join(ChangeArgs { records: args, .. }) = cli.command else {
            panic!("not join")
        };
        let flags = args.flags().unwrap();
        assert_eq!(flags.provider, "route53");
        assert_eq!(flags.zone.as_deref(), Some("unilans.net"));
        assert_eq!(flags.service.as_deref(), Some("_v1._theservice._tcp"));
        assert_eq!(flags.port, Some(8080));
        assert_eq!(args.stray(), None);
    }

    #[test]
    fn record_flags_without_a_provider_are_named() {
        let cli = Cli::try_parse_from(["dnsreg", "leave", "--name", "www"]).unwrap();
        let Command::Leave(ChangeArgs { records: args, .. }) = cli.command else {
            panic!("not leave")
        };
        assert!(args.flags().is_none());
        assert_eq!(args.stray(), Some("--name"));
    }

    #[test]
    fn global_options_go_anywhere() {
        let cli =
            Cli::try_parse_from(["dnsreg", "status", "-c", "/tmp/x.toml", "--json", "-q"]).unwrap();
        assert_eq!(cli.config, PathBuf::from("/tmp/x.toml"));
        assert!(cli.quiet);
        assert!(matches!(cli.command, Command::Status { json: true, .. }));
        assert!(
            Cli::try_parse_from(["dnsreg", "-v", "-q", "check"]).is_err(),
            "-v and -q conflict"
        );
    }
}

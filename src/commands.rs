//! The commands: what each `dnsreg` subcommand does, from the parsed command
//! line to its exit code (docs/design.md, "Exit codes": 0 success, 1 runtime
//! failure, 2 usage or configuration error, 3 `plan`: something would
//! change). Errors are returned, and printed by the binary as
//! `dnsreg: <what failed>: <why>` on stderr.

use std::process::ExitCode;
use std::time::Duration;

use crate::cli::{self, Cli, Command, RecordArgs};
use crate::config::{Config, ConfigError, UsageError};
use crate::engine::{Action, Engine};
use crate::output::print_reports;
use crate::{agent, config, discover, engine, manual, metadata, output};

/// How long a one-shot join or leave keeps resolving conflicts.
const ONE_SHOT_DEADLINE: Duration = Duration::from_secs(300);
/// How long `join` and `leave` wait for an accepted change to be live: Route53
/// propagates "generally within 60 seconds" (ChangeResourceRecordSets).
const LIVE_DEADLINE: Duration = Duration::from_secs(180);

/// Waits until every change the providers accepted is live, asking each once
/// when it is likely live (as long as the last one took, or a second for the
/// first), then less and less often. Returns whether all are.
async fn wait_until_live(engine: &mut Engine) -> bool {
    let started = std::time::Instant::now();
    let mut asked = 0u32;
    loop {
        let Some(due) = engine.confirm_due(Duration::from_secs(1)) else {
            return true;
        };
        let again = Duration::from_secs(1u64 << asked.min(4)).min(Duration::from_secs(15));
        let wait = if asked == 0 { due } else { due.max(again) };
        if started.elapsed() + wait > LIVE_DEADLINE {
            output::error(format_args!(
                "the change was accepted but is not live everywhere after {}; it will be (run `dnsreg status` to see)",
                humantime::format_duration(LIVE_DEADLINE)
            ));
            return false;
        }
        tokio::time::sleep(wait).await;
        asked += 1;
        for c in engine.confirm().await {
            match c.result {
                Ok(true) => tracing::info!(
                    provider = %c.provider,
                    change = %c.change,
                    "live on every server {:.1}s after it was accepted",
                    c.after.as_secs_f64()
                ),
                Ok(false) => {
                    tracing::debug!(provider = %c.provider, change = %c.change, "still pending")
                }
                Err(e) => {
                    output::error(format_args!("{e:#}"));
                    return false;
                }
            }
        }
    }
}

/// Prints a command's error as `dnsreg: <what failed>: <why>` and gives its
/// exit code: 2 for a usage or configuration error (what `dnsreg check`
/// finds), 1 for anything else.
pub fn failed(e: &anyhow::Error) -> ExitCode {
    let usage =
        e.downcast_ref::<ConfigError>().is_some() || e.downcast_ref::<UsageError>().is_some();
    output::error(format_args!("{e:#}"));
    ExitCode::from(if usage { 2 } else { 1 })
}

/// Logging as `-q`/`-v` and `DNSREG_LOG` ask, in the `--log-format` chosen.
pub fn init_logging(cli: &Cli) {
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    // Our own level; the AWS SDK's chatter only from -vv on.
    let filter = tracing_subscriber::EnvFilter::try_from_env("DNSREG_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if cli.verbose >= 2 {
            level.to_string()
        } else {
            format!("warn,dnsreg={level}")
        })
    });
    output::init(cli.log_format, filter);
}

/// The configuration from flags (when `--provider` is given) or the file.
fn load_config(cli: &Cli, args: Option<&RecordArgs>) -> anyhow::Result<Config> {
    if let Some(args) = args {
        if let Some(flags) = args.flags() {
            return Ok(config::from_flags(&flags)?);
        }
        if let Some(flag) = args.stray() {
            return Err(UsageError(format!(
                "{flag} configures from flags and needs --provider (e.g. --provider route53)"
            ))
            .into());
        }
    }
    if let Some(args) = args {
        let i = &args.instance;
        if i.metadata.is_some()
            || i.address.is_some()
            || i.instance_id.is_some()
            || i.ipv4.is_some()
            || i.metadata_endpoint.is_some()
            || i.ipv6
            || args.state_dir.is_some()
        {
            return Err(UsageError(
                "instance flags (--metadata, --ipv4, ...) and --state-dir go with --provider; with a configuration file, set them in its [instance] and [agent] tables".into(),
            )
            .into());
        }
    }
    Ok(config::load(&cli.config)?)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
}

/// SIGHUPs, as a channel the agent reads.
fn reload_signal() -> tokio::sync::mpsc::UnboundedReceiver<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            if tx.send(()).is_err() {
                return;
            }
        }
    });
    rx
}

/// `dnsreg plan`, `join --dry-run`, `leave --dry-run`: what the action would
/// do now, writing nothing. Exit 0 when nothing would change, 3 when
/// something would, 1 when a provider could not be asked.
async fn plan(
    cli: &Cli,
    action: Action,
    records: &RecordArgs,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let config = load_config(cli, Some(records))?;
    let identity = metadata::identify(&config.instance).await?;
    let mut engine = Engine::new(config, &identity)?;
    let reports = engine.dry_run(action, ONE_SHOT_DEADLINE).await?;
    let planned = output::print_plans(action, &engine.vars().instance_id, &reports, json);
    Ok(ExitCode::from(if !planned.ok {
        1
    } else if planned.changes {
        3
    } else {
        0
    }))
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Check => check(&cli),
        Command::Whoami { instance, json } => whoami(&cli, instance, *json).await,
        Command::Plan(args) => {
            let action = if args.leave {
                Action::Leave
            } else {
                Action::Join
            };
            plan(&cli, action, &args.records, args.json).await
        }
        Command::Join(args) => change(&cli, Action::Join, args).await,
        Command::Leave(args) => change(&cli, Action::Leave, args).await,
        Command::Status { records, json } => status(&cli, records, *json).await,
        Command::Discover(args) => discover::run(args).await,
        Command::Completions { shell } => {
            manual::completions(*shell, &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Manpages { dir } => {
            let pages = manual::man_pages(dir).map_err(|e| {
                anyhow::anyhow!("writing the man pages into {}: {e}", dir.display())
            })?;
            for page in pages {
                println!("{}", page.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Reap => {
            let config = load_config(&cli, None)?;
            let reports = engine::reap_once(&config, ONE_SHOT_DEADLINE).await;
            Ok(exit(output::print_reaped(&reports)))
        }
        Command::Run => {
            let config = load_config(&cli, None)?;
            agent::run(
                config,
                agent::loader(cli.config.clone()),
                shutdown_signal(),
                reload_signal(),
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// 0 when everything went as asked, else 1.
fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `dnsreg check`: the configuration is valid; notes for fleets.
fn check(cli: &Cli) -> anyhow::Result<ExitCode> {
    let config = load_config(cli, None)?;
    let n = config.records.len();
    println!(
        "{}: OK ({} provider{}, {n} record spec{})",
        cli.config.display(),
        config.providers.len(),
        if config.providers.len() == 1 { "" } else { "s" },
        if n == 1 { "" } else { "s" }
    );
    for note in config::fleet_notes(&config)
        .into_iter()
        .chain(config::mdns_notes(&config))
    {
        println!("note: {note}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `dnsreg whoami`: what the metadata says this instance is.
async fn whoami(cli: &Cli, instance: &cli::InstanceArgs, json: bool) -> anyhow::Result<ExitCode> {
    let given = instance.metadata.is_some()
        || instance.instance_id.is_some()
        || instance.ipv4.is_some()
        || instance.metadata_endpoint.is_some()
        || instance.address.is_some();
    let instance_cfg = if given || !cli.config.exists() {
        config::instance_from_flags(&instance.flags())?
    } else {
        config::load_instance(&cli.config)?
    };
    let identity = metadata::identify(&instance_cfg).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&identity)?);
        return Ok(ExitCode::SUCCESS);
    }
    let show = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    println!(
        "cloud:        {} ({})",
        identity.cloud, identity.detected_by
    );
    println!("instance id:  {}", identity.instance_id);
    println!("region:       {}", show(identity.region.clone()));
    println!("zone:         {}", show(identity.availability_zone.clone()));
    println!("hostname:     {}", show(identity.hostname.clone()));
    println!(
        "public ipv4:  {}",
        show(identity.public_ipv4.map(|i| i.to_string()))
    );
    println!(
        "private ipv4: {}",
        show(identity.private_ipv4.map(|i| i.to_string()))
    );
    println!(
        "ipv6:         {}",
        show(identity.ipv6.map(|i| i.to_string()))
    );
    Ok(ExitCode::SUCCESS)
}

/// `dnsreg join` and `dnsreg leave` (or their dry runs).
async fn change(cli: &Cli, action: Action, args: &cli::ChangeArgs) -> anyhow::Result<ExitCode> {
    if args.dry_run {
        return plan(cli, action, &args.records, args.json).await;
    }
    let config = load_config(cli, Some(&args.records))?;
    let identity = metadata::identify(&config.instance).await?;
    let mut engine = Engine::new(config, &identity)?;
    let reports = engine.sync(action, ONE_SHOT_DEADLINE).await?;
    let mut ok = print_reports(action, &reports);
    if ok && !args.no_wait {
        ok = wait_until_live(&mut engine).await;
    }
    Ok(exit(ok))
}

/// `dnsreg status`: whether each desired record is there, and what a running
/// agent says.
async fn status(cli: &Cli, records: &cli::RecordArgs, json: bool) -> anyhow::Result<ExitCode> {
    let config = load_config(cli, Some(records))?;
    let identity = metadata::identify(&config.instance).await?;
    let mut engine = Engine::new(config, &identity)?;
    let mut all_present = true;
    let mut rows = Vec::new();
    for result in engine.status().await? {
        match result {
            Ok(list) => rows.extend(list),
            Err(e) => {
                all_present = false;
                output::error(format_args!("status: {e:#}"));
            }
        }
    }
    all_present &= rows.iter().all(|r| r.present);
    // A running agent says why records are (or are not) there.
    let agent = agent::AgentStatus::read(&engine.config().agent.state_dir);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "instance_id": engine.vars().instance_id, "all_present": all_present, "agent": agent, "records": rows })
            )?
        );
        return Ok(exit(all_present));
    }
    if let Some(agent) = &agent {
        println!("{agent}");
        for c in &agent.checks {
            println!(
                "  {} {}: {}",
                match (c.passing, c.last_passed) {
                    (true, _) => "passing",
                    (false, true) => "rising ",
                    (false, false) => "FAILING",
                },
                c.check,
                c.last
            );
        }
    }
    for r in &rows {
        println!(
            "{:<8} {}: {}",
            if r.present { "present" } else { "MISSING" },
            r.provider,
            r.record
        );
    }
    Ok(exit(all_present))
}

//! The `pgsluice` binary: PgBouncer's command line, logging set-up, the tokio runtime, and the
//! process-level duties (pidfile, daemon mode, switching user).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use pgsluice::app::{self, signals};
use pgsluice::config::Config;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const USAGE: &str =
    "pgsluice - a multi-threaded PostgreSQL connection pooler, drop-in compatible with PgBouncer

Usage: pgsluice [OPTION]... CONFIG_FILE

Options:
  -d, --daemon              run in the background (needs pidfile)
  -q, --quiet               do not log to stderr
  -v, --verbose             increase verbosity (repeat for more)
  -u, --user USER           switch to USER after start-up
      --extra-config FILE   read the [pgsluice] section from FILE as well
      --check               load and validate CONFIG_FILE, then exit
  -R, --reboot              accepted for compatibility; online restart was removed from
                            PgBouncer in 1.26: use so_reuseport and a rolling restart
  -V, --version             print the version and exit
  -h, --help                print this help and exit
";

#[derive(Debug, Default)]
struct Args {
    daemon: bool,
    quiet: bool,
    verbose: u8,
    user: Option<String>,
    extra_config: Option<PathBuf>,
    check: bool,
    config: Option<PathBuf>,
}

enum Parsed {
    Run(Args),
    Exit(&'static str),
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Parsed> {
    let mut args = Args::default();
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "-d" | "--daemon" => args.daemon = true,
            "-q" | "--quiet" => args.quiet = true,
            "-v" | "--verbose" => args.verbose = args.verbose.saturating_add(1),
            "-u" | "--user" => args.user = Some(argv.next().context("-u needs a user name")?),
            "--extra-config" => {
                args.extra_config =
                    Some(argv.next().context("--extra-config needs a file")?.into());
            }
            "--check" => args.check = true,
            "-R" | "--reboot" => {
                tracing::warn!(
                    "-R (online restart) was removed in PgBouncer 1.26 and is not implemented; starting normally"
                );
            }
            "-V" | "--version" => {
                return Ok(Parsed::Exit(concat!(
                    "pgsluice ",
                    env!("CARGO_PKG_VERSION")
                )));
            }
            "-h" | "--help" => return Ok(Parsed::Exit(USAGE)),
            // Combined short flags as getopt allows: -dv, -vvv.
            s if s.starts_with('-')
                && s.len() > 2
                && !s.starts_with("--")
                && s[1..].chars().all(|c| "dqvR".contains(c)) =>
            {
                for c in s[1..].chars() {
                    match c {
                        'd' => args.daemon = true,
                        'q' => args.quiet = true,
                        'v' => args.verbose = args.verbose.saturating_add(1),
                        _ => {}
                    }
                }
            }
            s if s.starts_with('-') => bail!("unknown option {s}\n\n{USAGE}"),
            file => {
                if args.config.replace(file.into()).is_some() {
                    bail!("only one CONFIG_FILE may be given\n\n{USAGE}");
                }
            }
        }
    }
    Ok(Parsed::Run(args))
}

fn init_logging(args: &Args, config: Option<&Config>) -> Result<()> {
    let verbose = args.verbose.max(config.map_or(0, |c| c.general.verbose));
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter =
        || EnvFilter::try_from_env("PGSLUICE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let stderr = (!args.quiet).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter_boxed(filter())
    });
    let file = match config.and_then(|c| c.general.logfile.as_ref()) {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open logfile {}", path.display()))?;
            Some(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(std::sync::Mutex::new(f))
                    .with_filter_boxed(filter()),
            )
        }
        None => None,
    };
    tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init()
        .ok();
    Ok(())
}

trait BoxedFilter<S> {
    fn with_filter_boxed(
        self,
        filter: EnvFilter,
    ) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync>;
}

impl<S, L> BoxedFilter<S> for L
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    L: tracing_subscriber::Layer<S> + Send + Sync + 'static,
{
    fn with_filter_boxed(
        self,
        filter: EnvFilter,
    ) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync> {
        Box::new(self.with_filter(filter))
    }
}

/// Re-runs this program without `-d`, detached, and returns in the parent.
fn daemonize(config: &Config) -> Result<()> {
    if config.general.pidfile.is_none() {
        bail!("daemon mode needs pidfile to be set");
    }
    let exe = std::env::current_exe().context("cannot find own executable")?;
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "-d" && a != "--daemon")
        .map(|a| {
            if a.starts_with('-') && !a.starts_with("--") {
                a.replace('d', "")
            } else {
                a
            }
        })
        .filter(|a| a != "-")
        .collect();
    std::process::Command::new(exe)
        .args(args)
        .arg("-q")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .context("cannot start daemon")?;
    Ok(())
}

fn switch_user(name: &str) -> Result<()> {
    let user =
        nix::unistd::User::from_name(name)?.with_context(|| format!("no such user: {name}"))?;
    nix::unistd::setgid(user.gid).context("setgid failed")?;
    nix::unistd::setuid(user.uid).context("setuid failed")?;
    Ok(())
}

fn worker_threads(config: &Config) -> usize {
    config
        .pgsluice
        .get("worker_threads")
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, std::num::NonZero::get))
}

fn run(args: Args) -> Result<()> {
    let path = args
        .config
        .clone()
        .context(format!("no CONFIG_FILE given\n\n{USAGE}"))?;
    let config = Config::load_with_extra(&path, args.extra_config.as_deref())
        .with_context(|| format!("invalid configuration {}", path.display()))?;
    if args.check {
        return Ok(());
    }
    if args.daemon {
        return daemonize(&config);
    }
    init_logging(&args, Some(&config))?;
    if let Some(user) = args.user.as_deref().or(config.general.user.as_deref()) {
        switch_user(user)?;
    }
    let pidfile = config.general.pidfile.clone();
    if let Some(pidfile) = &pidfile {
        std::fs::write(pidfile, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write pidfile {}", pidfile.display()))?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads(&config))
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let result = runtime.block_on(async {
        let running = app::start(config)?;
        let source = signals::ReloadSource {
            config: path,
            extra: args.extra_config,
        };
        signals::spawn(
            running.shutdown().clone(),
            std::sync::Arc::clone(running.registry()),
            Some(source),
        )?;
        running.wait().await;
        anyhow::Ok(())
    });
    if let Some(pidfile) = &pidfile {
        let _ = std::fs::remove_file(pidfile);
    }
    result
}

#[allow(clippy::print_stdout, clippy::print_stderr)]
fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)) {
        Ok(Parsed::Exit(text)) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Ok(Parsed::Run(args)) => match run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pgsluice: {e:#}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("pgsluice: {e:#}");
            ExitCode::from(2)
        }
    }
}

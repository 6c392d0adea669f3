//! The `pgsluice` binary: PgBouncer's command line, the tokio runtime (current-thread for
//! `worker_threads = 1`, work-stealing for more), and the process-level duties (pidfile, daemon
//! mode, switching user). Log output lives in `app::logging`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use pgsluice::app::logging::{self, LogSettings};
use pgsluice::app::{self, StartOptions, check, signals};
use pgsluice::config::Config;

/// `--features jemalloc`: jemalloc as the global allocator (docs/performance.md, "Idle memory").
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const USAGE: &str =
    "pgsluice - a multi-threaded PostgreSQL connection pooler, drop-in compatible with PgBouncer

Usage: pgsluice [OPTION]... CONFIG_FILE

Options:
  -d, --daemon              run in the background (needs pidfile)
  -q, --quiet               do not log to stderr
  -v, --verbose             increase verbosity (repeat for more)
  -u, --user USER           switch to USER after start-up
      --extra-config FILE   read the [pgsluice] section from FILE as well
      --check               load and validate CONFIG_FILE, print the effective
                            configuration, then exit (non-zero on error)
      --probe               exit 0 if a pooler answers on the address CONFIG_FILE
                            configures (for health checks; needs no password)
  -R, --reboot              accepted for compatibility; online restart was removed from
                            PgBouncer in 1.26: use so_reuseport and a rolling restart
  -V, --version             print the version and exit
  -h, --help                print this help and exit
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Once {
    Check,
    Probe,
}

#[derive(Debug, Default)]
struct Args {
    daemon: bool,
    quiet: bool,
    verbose: u8,
    user: Option<String>,
    extra_config: Option<PathBuf>,
    /// `--check` or `--probe`: a one-shot mode instead of running.
    once: Option<Once>,
    /// Set in the process `-d` starts: it detaches from the terminal's session.
    daemon_child: bool,
    config: Option<PathBuf>,
}

enum Parsed {
    Run(Args),
    Exit(String),
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Parsed> {
    let mut args = Args::default();
    let mut version = false;
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
            "--check" => args.once = Some(Once::Check),
            "--probe" => args.once = Some(Once::Probe),
            "--daemon-child" => args.daemon_child = true,
            "-R" | "--reboot" => {
                // Logging is not set up yet: say it on stderr directly.
                let _ = writeln!(
                    std::io::stderr(),
                    "pgsluice: -R (online restart) was removed in PgBouncer 1.26 and is not implemented; starting normally (see docs/operations.md)"
                );
            }
            "-V" | "--version" => version = true,
            "-h" | "--help" => return Ok(Parsed::Exit(USAGE.to_owned())),
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
    if version {
        return Ok(Parsed::Exit(version_text(&args)));
    }
    Ok(Parsed::Run(args))
}

/// What `--version` prints: first the line SHOW VERSION answers (PgBouncer prints
/// `PgBouncer x.y.z` there too), for the `admin_compat_version` of CONFIG_FILE when one is
/// given and readable, else for the default; then pgsluice's own version.
fn version_text(args: &Args) -> String {
    let emulated = args
        .config
        .as_deref()
        .and_then(|path| Config::load_with_extra(path, args.extra_config.as_deref()).ok())
        .map_or(pgsluice::admin::LATEST_VERSION, |config| {
            pgsluice::admin::compat_version(&config)
        });
    format!(
        "{}\npgsluice {}",
        pgsluice::admin::version_string(emulated),
        env!("CARGO_PKG_VERSION")
    )
}

/// Re-runs this program without `-d`, detached, and returns once it has written its pidfile
/// (so the caller knows it is listening) or reports why it stopped.
fn daemonize(pidfile: &Path) -> Result<()> {
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
    let mut child = std::process::Command::new(exe)
        .args(args)
        .args(["-q", "--daemon-child"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("cannot start daemon")?;
    let pid = i32::try_from(child.id()).unwrap_or(0);
    // Bounded: 30 s for the daemon to bind and write its pidfile.
    for _ in 0..600 {
        if let Some(status) = child.try_wait().context("cannot watch the daemon")? {
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
            }
            bail!(
                "the daemon exited during start-up ({status}): {}",
                err.trim()
            );
        }
        if app::process::read_pid(pidfile) == Some(pid) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!(
        "the daemon (pid {pid}) did not write {} within 30 s",
        pidfile.display()
    )
}

fn worker_threads(config: &Config) -> usize {
    config
        .pgsluice
        .get("worker_threads")
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, std::num::NonZero::get))
}

#[allow(clippy::print_stdout)]
fn run(args: Args) -> Result<()> {
    let path = args
        .config
        .clone()
        .context(format!("no CONFIG_FILE given\n\n{USAGE}"))?;
    let config = Config::load_with_extra(&path, args.extra_config.as_deref())
        .with_context(|| format!("invalid configuration {}", path.display()))?;
    let log_settings = LogSettings::from_config(&config)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("invalid configuration {}", path.display()))?;
    match args.once {
        Some(Once::Check) => {
            print!("{}", check::effective_config(&config));
            return Ok(());
        }
        Some(Once::Probe) => {
            return check::probe(&config, Duration::from_secs(5)).map_err(anyhow::Error::msg);
        }
        None => {}
    }
    let pidfile = config.general.pidfile.clone();
    let taken_over = match &pidfile {
        Some(pidfile) => app::process::check_pidfile(pidfile, config.general.so_reuseport)
            .map_err(anyhow::Error::msg)?,
        None => None,
    };
    if args.daemon {
        let pidfile = pidfile.context("daemon mode needs pidfile to be set")?;
        return daemonize(&pidfile);
    }
    if args.daemon_child {
        app::process::detach().map_err(anyhow::Error::msg)?;
    }
    // Before any file is created, so the logfile, pidfile and socket belong to the new user.
    if let Some(user) = args.user.as_deref().or(config.general.user.as_deref()) {
        app::process::switch_user(user).map_err(anyhow::Error::msg)?;
    }
    let logging =
        logging::init(args.quiet, args.verbose, &log_settings).map_err(anyhow::Error::msg)?;
    if let Some(pid) = taken_over {
        tracing::warn!(
            pid,
            "the pidfile names a running process; taking it over (so_reuseport rolling restart)"
        );
    }
    // One worker: a current-thread runtime, which wakes tasks by a push onto its own queue
    // (no work-stealing bookkeeping, no futex wake-ups of idle siblings); more: work stealing.
    let workers = worker_threads(&config);
    // Says what a cgroup CPU limit made of the default (a container with --cpus=1 gets 1).
    tracing::info!(worker_threads = workers, "starting the runtime");
    pgsluice::worker::set_count(workers);
    let runtime = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        let next = std::sync::atomic::AtomicUsize::new(0);
        builder
            .worker_threads(workers)
            .on_thread_start(move || pgsluice::worker::enter(next.fetch_add(1, Ordering::Relaxed)));
        builder
    }
    .enable_all()
    .build()
    .context("cannot start the runtime")?;
    runtime.block_on(async {
        let options = StartOptions {
            extra_config: args.extra_config,
            logging: Some(logging),
        };
        let running = app::start_with(config, options)?;
        // Written once listening, so its presence means the pooler is up (daemon mode waits
        // for it).
        let _pidfile = pidfile
            .as_deref()
            .map(app::process::Pidfile::create)
            .transpose()
            .map_err(anyhow::Error::msg)?;
        signals::spawn(
            running.shutdown().clone(),
            std::sync::Arc::clone(running.registry()),
            running.control().clone(),
        )?;
        running.wait().await;
        anyhow::Ok(())
    })
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
                tracing::error!("{e:#}");
                // The daemon's stderr may be a pipe nobody reads any more: never panic on it.
                let _ = writeln!(std::io::stderr(), "pgsluice: {e:#}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("pgsluice: {e:#}");
            ExitCode::from(2)
        }
    }
}

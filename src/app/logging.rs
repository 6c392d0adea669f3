//! Log output and its live changes: stderr (unless `-q`), `logfile`, syslog, as text or JSON
//! lines (`[pgsluice] log_format`), at the verbosity of `-v` / `verbose`.
//!
//! Owns: installing the process's tracing subscriber once ([`init`]) and the [`LogHandle`] a
//! reload uses to reopen `logfile` (log rotation: rename, then SIGHUP), switch syslog and the
//! format, and change the verbosity.
//! Does not: decide which events are logged beyond the level (`log_connections` and friends
//! are checked where the event happens, against the running config).
//! Invariants: one formatted line per event goes to every enabled sink; a sink that fails
//! (disk full, no syslog daemon) drops the line and never fails the caller; the `PGSLUICE_LOG`
//! environment filter, when set, wins over `verbose`.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tracing::{Level, Metadata};
use tracing_subscriber::filter::dynamic_filter_fn;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

use super::syslog::{self, Syslog};
use crate::config::Config;

/// The environment variable with a tracing filter that overrides `verbose`.
pub const ENV_FILTER: &str = "PGSLUICE_LOG";

/// What the config asks of the log output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// `verbose` (the larger of it and `-v` applies).
    pub verbose: u8,
    /// `logfile`.
    pub logfile: Option<PathBuf>,
    /// `syslog`, with `syslog_ident`, `syslog_facility`, and `[pgsluice] syslog_socket`.
    pub syslog: Option<(PathBuf, String, String)>,
    /// `[pgsluice] log_format = json`.
    pub json: bool,
}

impl LogSettings {
    /// Reads and checks the log settings of `config`.
    pub fn from_config(config: &Config) -> Result<LogSettings, String> {
        let g = &config.general;
        let json = match config.pgsluice.get("log_format").map(String::as_str) {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => return Err(format!("invalid log_format: {other} (text or json)")),
        };
        let syslog = if g.syslog {
            syslog::facility_code(&g.syslog_facility)
                .ok_or_else(|| format!("invalid syslog_facility: {}", g.syslog_facility))?;
            let socket = config
                .pgsluice
                .get("syslog_socket")
                .map_or_else(|| PathBuf::from(syslog::DEFAULT_SOCKET), PathBuf::from);
            Some((socket, g.syslog_ident.clone(), g.syslog_facility.clone()))
        } else {
            None
        };
        Ok(LogSettings {
            verbose: g.verbose,
            logfile: g.logfile.clone(),
            syslog,
            json,
        })
    }
}

/// The sinks, shared by the formatting layers and the handle.
#[derive(Debug)]
struct Sinks {
    stderr: bool,
    json: AtomicBool,
    use_syslog: AtomicBool,
    file: Mutex<Option<File>>,
    syslog: Mutex<Option<Syslog>>,
}

/// Changes the running log output (on reload).
#[derive(Clone)]
pub struct LogHandle {
    sinks: Arc<Sinks>,
    filter: reload::Handle<EnvFilter, Registry>,
    cli_verbose: u8,
}

impl std::fmt::Debug for LogHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogHandle").finish_non_exhaustive()
    }
}

fn env_filter(verbose: u8) -> EnvFilter {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    EnvFilter::try_from_env(ENV_FILTER).unwrap_or_else(|_| EnvFilter::new(default))
}

fn open_logfile(path: &PathBuf) -> Result<File, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open logfile {}: {e}", path.display()))
}

/// Installs the process's log output. `quiet` is `-q`; `cli_verbose` counts `-v`.
pub fn init(quiet: bool, cli_verbose: u8, settings: &LogSettings) -> Result<LogHandle, String> {
    let file = settings.logfile.as_ref().map(open_logfile).transpose()?;
    let syslog = match &settings.syslog {
        Some((path, ident, facility)) => Some(Syslog::new(path.clone(), ident, facility)?),
        None => None,
    };
    let sinks = Arc::new(Sinks {
        stderr: !quiet,
        json: AtomicBool::new(settings.json),
        use_syslog: AtomicBool::new(syslog.is_some()),
        file: Mutex::new(file),
        syslog: Mutex::new(syslog),
    });
    let (filter, handle) = reload::Layer::new(env_filter(cli_verbose.max(settings.verbose)));
    let (text_on, json_on, syslog_on) =
        (Arc::clone(&sinks), Arc::clone(&sinks), Arc::clone(&sinks));
    let text = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(LineSink(Arc::clone(&sinks)))
        .with_filter(dynamic_filter_fn(move |_, _| {
            !text_on.json.load(Ordering::Relaxed)
        }));
    let json = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_writer(LineSink(Arc::clone(&sinks)))
        .with_filter(dynamic_filter_fn(move |_, _| {
            json_on.json.load(Ordering::Relaxed)
        }));
    // Syslog adds its own timestamp, and its priority carries the level.
    let syslog = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .without_time()
        .with_level(false)
        .with_target(false)
        .with_writer(SyslogSink(Arc::clone(&sinks)))
        .with_filter(dynamic_filter_fn(move |_, _| {
            syslog_on.use_syslog.load(Ordering::Relaxed)
        }));
    tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .with(syslog)
        .try_init()
        .map_err(|e| format!("cannot install logging: {e}"))?;
    Ok(LogHandle {
        sinks,
        filter: handle,
        cli_verbose,
    })
}

impl LogHandle {
    /// Applies reloaded settings: reopens `logfile` (also when its name is unchanged, which is
    /// how rotation works), switches syslog and the format, and sets the verbosity. On an
    /// error (a logfile that cannot be opened), the running output is kept.
    pub fn apply(&self, settings: &LogSettings) -> Result<(), String> {
        let file = settings.logfile.as_ref().map(open_logfile).transpose()?;
        let syslog = match &settings.syslog {
            Some((path, ident, facility)) => Some(Syslog::new(path.clone(), ident, facility)?),
            None => None,
        };
        *self.sinks.file.lock() = file;
        self.sinks
            .use_syslog
            .store(syslog.is_some(), Ordering::Relaxed);
        *self.sinks.syslog.lock() = syslog;
        self.sinks.json.store(settings.json, Ordering::Relaxed);
        self.filter
            .reload(env_filter(self.cli_verbose.max(settings.verbose)))
            .map_err(|e| format!("cannot change the log level: {e}"))
    }
}

/// Writes each formatted line to stderr and the logfile.
struct LineSink(Arc<Sinks>);

/// One event's writer for [`LineSink`].
struct LineWriter<'a>(&'a Sinks);

impl<'a> MakeWriter<'a> for LineSink {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(&self.0)
    }
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.stderr {
            let _ = std::io::stderr().write_all(buf);
        }
        if let Some(file) = self.0.file.lock().as_mut() {
            let _ = file.write_all(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends each formatted line to syslog with the event's level.
struct SyslogSink(Arc<Sinks>);

/// One event's writer for [`SyslogSink`].
struct SyslogWriter<'a> {
    sinks: &'a Sinks,
    level: Level,
}

impl<'a> MakeWriter<'a> for SyslogSink {
    type Writer = SyslogWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        SyslogWriter {
            sinks: &self.0,
            level: Level::INFO,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        SyslogWriter {
            sinks: &self.0,
            level: *meta.level(),
        }
    }
}

impl Write for SyslogWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(syslog) = self.sinks.syslog.lock().as_ref() {
            syslog.send(self.level, &String::from_utf8_lossy(buf));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_config() {
        let cfg = Config::from_ini_str(
            "[pgbouncer]\nsyslog = 1\nsyslog_facility = local3\nverbose = 2\n[pgsluice]\nlog_format = json\nsyslog_socket = /run/x.sock\n",
            "t.ini",
        )
        .unwrap();
        let s = LogSettings::from_config(&cfg).unwrap();
        assert!(s.json);
        assert_eq!(s.verbose, 2);
        let (path, ident, facility) = s.syslog.unwrap();
        assert_eq!(path, PathBuf::from("/run/x.sock"));
        assert_eq!((ident.as_str(), facility.as_str()), ("pgbouncer", "local3"));
        let bad =
            Config::from_ini_str("[pgbouncer]\n[pgsluice]\nlog_format = xml\n", "t.ini").unwrap();
        assert!(LogSettings::from_config(&bad).is_err());
        let bad =
            Config::from_ini_str("[pgbouncer]\nsyslog = 1\nsyslog_facility = kern\n", "t").unwrap();
        assert!(LogSettings::from_config(&bad).is_err());
    }
}

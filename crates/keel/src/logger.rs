//! The logging interface of the core, as etcd-raft's `Logger` is.
//!
//! The core formats log lines lazily: callers go through the crate's level
//! macros, which ask [`Logger::is_enabled`] before building the message, so a
//! disabled level costs one virtual call and no formatting on hot paths.
//! etcd's formatted variants (`Infof`, ...) are the `fmt::Arguments` methods;
//! its plain ones are the same methods given `format_args!("{}", ..)`.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

/// Severity of a log line, in etcd's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Per-message detail.
    Debug = 0,
    /// State changes: elections, configuration changes.
    Info = 1,
    /// Something unexpected that the core handles.
    Warn = 2,
    /// A request that could not be served.
    Error = 3,
    /// A broken invariant; the core panics after logging it.
    Fatal = 4,
}

impl Level {
    /// The upper-case name etcd's test logger prints (`DEBUG`, `INFO`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
            Level::Fatal => "FATAL",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the core's log lines go. Implementations must be cheap to call from
/// the Raft loop and safe to share with storage threads.
pub trait Logger: Send + Sync {
    /// Whether lines at `level` are wanted. The core checks this before it
    /// formats anything.
    fn is_enabled(&self, level: Level) -> bool;

    /// Writes one line (without a trailing newline).
    fn log(&self, level: Level, message: fmt::Arguments<'_>);

    /// Logs at [`Level::Debug`].
    fn debug(&self, message: fmt::Arguments<'_>) {
        self.log(Level::Debug, message)
    }
    /// Logs at [`Level::Info`].
    fn info(&self, message: fmt::Arguments<'_>) {
        self.log(Level::Info, message)
    }
    /// Logs at [`Level::Warn`].
    fn warn(&self, message: fmt::Arguments<'_>) {
        self.log(Level::Warn, message)
    }
    /// Logs at [`Level::Error`].
    fn error(&self, message: fmt::Arguments<'_>) {
        self.log(Level::Error, message)
    }
    /// Logs at [`Level::Fatal`], then panics: etcd's `Fatal` exits the process,
    /// and a library must leave that choice to the application's panic policy.
    fn fatal(&self, message: fmt::Arguments<'_>) -> ! {
        let text = message.to_string();
        self.log(Level::Fatal, format_args!("{text}"));
        panic!("{text}")
    }
    /// Logs at [`Level::Fatal`], then panics, as etcd's `Panic` does.
    fn panic(&self, message: fmt::Arguments<'_>) -> ! {
        self.fatal(message)
    }
}

/// The default logger: forwards to `tracing` with target `keel`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingLogger;

impl Logger for TracingLogger {
    fn is_enabled(&self, level: Level) -> bool {
        match level {
            Level::Debug => tracing::enabled!(target: "keel", tracing::Level::DEBUG),
            Level::Info => tracing::enabled!(target: "keel", tracing::Level::INFO),
            Level::Warn => tracing::enabled!(target: "keel", tracing::Level::WARN),
            Level::Error | Level::Fatal => {
                tracing::enabled!(target: "keel", tracing::Level::ERROR)
            }
        }
    }

    fn log(&self, level: Level, message: fmt::Arguments<'_>) {
        match level {
            Level::Debug => tracing::debug!(target: "keel", "{message}"),
            Level::Info => tracing::info!(target: "keel", "{message}"),
            Level::Warn => tracing::warn!(target: "keel", "{message}"),
            Level::Error | Level::Fatal => tracing::error!(target: "keel", "{message}"),
        }
    }
}

/// A logger that drops everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiscardLogger;

impl Logger for DiscardLogger {
    fn is_enabled(&self, _level: Level) -> bool {
        false
    }
    fn log(&self, _level: Level, _message: fmt::Arguments<'_>) {}
}

/// A logger for tests: appends `LEVEL message\n` lines to a shared buffer, as
/// etcd's test logger does, from a threshold level up. Clones share the buffer
/// and the threshold.
#[derive(Clone, Debug)]
pub struct CaptureLogger {
    buf: Arc<Mutex<String>>,
    /// The lowest level written, or `u8::MAX` for none.
    threshold: Arc<AtomicU8>,
}

impl Default for CaptureLogger {
    fn default() -> Self {
        CaptureLogger::new()
    }
}

impl CaptureLogger {
    /// A logger that captures every level.
    pub fn new() -> CaptureLogger {
        CaptureLogger { buf: Arc::default(), threshold: Arc::new(AtomicU8::new(0)) }
    }

    /// Captures lines at `level` and above; `None` captures nothing.
    pub fn set_level(&self, level: Option<Level>) {
        let raw = level.map_or(u8::MAX, |l| l as u8);
        self.threshold.store(raw, Ordering::Relaxed);
    }

    /// The current threshold (`None` when nothing is captured).
    pub fn level(&self) -> Option<Level> {
        match self.threshold.load(Ordering::Relaxed) {
            0 => Some(Level::Debug),
            1 => Some(Level::Info),
            2 => Some(Level::Warn),
            3 => Some(Level::Error),
            4 => Some(Level::Fatal),
            _ => None,
        }
    }

    /// Appends raw text to the buffer, so that a harness can interleave its own
    /// output with the log lines.
    pub fn write_str(&self, text: &str) {
        self.lock().push_str(text);
    }

    /// Takes the captured text, leaving the buffer empty.
    pub fn take(&self) -> String {
        std::mem::take(&mut *self.lock())
    }

    /// A copy of the captured text.
    pub fn contents(&self) -> String {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, String> {
        // A panic while holding the lock leaves a string that is still valid.
        self.buf.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Logger for CaptureLogger {
    fn is_enabled(&self, level: Level) -> bool {
        level as u8 >= self.threshold.load(Ordering::Relaxed)
    }

    fn log(&self, level: Level, message: fmt::Arguments<'_>) {
        if !self.is_enabled(level) {
            return;
        }
        use fmt::Write as _;
        let mut buf = self.lock();
        let start = buf.len();
        let _ = write!(buf, "{} {}", level.as_str(), message);
        if !buf[start..].ends_with('\n') {
            buf.push('\n');
        }
    }
}

#[allow(unused_macros)]
/// Logs through a `&dyn Logger` (or anything that derefs to one) only when the
/// level is enabled, so the arguments are not formatted otherwise.
macro_rules! log_at {
    ($logger:expr, $level:expr, $($arg:tt)+) => {{
        let logger: &dyn $crate::logger::Logger = &*$logger;
        if logger.is_enabled($level) {
            logger.log($level, format_args!($($arg)+));
        }
    }};
}

/// Debug-level line, formatted only when enabled.
#[allow(unused_macros)]
macro_rules! debugf {
    ($logger:expr, $($arg:tt)+) => { log_at!($logger, $crate::logger::Level::Debug, $($arg)+) };
}
/// Info-level line, formatted only when enabled.
#[allow(unused_macros)]
macro_rules! infof {
    ($logger:expr, $($arg:tt)+) => { log_at!($logger, $crate::logger::Level::Info, $($arg)+) };
}
/// Warn-level line, formatted only when enabled.
#[allow(unused_macros)]
macro_rules! warnf {
    ($logger:expr, $($arg:tt)+) => { log_at!($logger, $crate::logger::Level::Warn, $($arg)+) };
}
/// Error-level line, formatted only when enabled.
#[allow(unused_macros)]
macro_rules! errorf {
    ($logger:expr, $($arg:tt)+) => { log_at!($logger, $crate::logger::Level::Error, $($arg)+) };
}
/// Logs at fatal level and panics: a broken invariant.
#[allow(unused_macros)]
macro_rules! panicf {
    ($logger:expr, $($arg:tt)+) => {{
        let logger: &dyn $crate::logger::Logger = &*$logger;
        logger.panic(format_args!($($arg)+))
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_logger_formats_like_etcd_test_logger() {
        let l = CaptureLogger::new();
        let logger: Arc<dyn Logger> = Arc::new(l.clone());
        infof!(logger, "{:x} became leader at term {}", 10u64, 1);
        debugf!(logger, "already ends\n");
        l.set_level(Some(Level::Warn));
        infof!(logger, "dropped");
        warnf!(logger, "kept");
        l.set_level(None);
        errorf!(logger, "dropped too");
        assert_eq!(l.take(), "INFO a became leader at term 1\nDEBUG already ends\nWARN kept\n");
    }

    #[test]
    fn disabled_levels_do_not_format() {
        struct Loud;
        impl fmt::Display for Loud {
            fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
                panic!("formatted while disabled")
            }
        }
        let logger = DiscardLogger;
        debugf!(&logger, "{}", Loud);
    }
}

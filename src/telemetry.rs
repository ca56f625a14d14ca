//! Log setup: tracing to stderr, text or JSON, filtered by `RUST_LOG` (default info).
//! Text is coloured only when stderr is a terminal: a file, a pipe or a container's
//! log gets plain lines, without escape codes.

use std::{ffi::OsStr, io::IsTerminal};

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogFormat;

/// Installs the global subscriber (once; later calls do nothing).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let no_color = std::env::var_os("NO_COLOR");
    let ansi = colour(std::io::stderr().is_terminal(), no_color.as_deref());
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Whether text logs are coloured: only on a terminal, and never when `NO_COLOR` is
/// set to anything but the empty string (<https://no-color.org>).
fn colour(terminal: bool, no_color: Option<&OsStr>) -> bool {
    let refused = no_color.is_some_and(|value| !value.is_empty());
    terminal && !refused
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_that_no_color_leaves_alone() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))), "an empty NO_COLOR is unset");
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None), "a file, a pipe or a container log");
        assert!(!colour(false, Some(OsStr::new("1"))));
    }
}

//! Progress on stderr for people at a terminal: a bar for uploads, a spinner for waits. When
//! stderr is not a terminal (a pipe, a script, a test) they draw nothing, so stderr carries only
//! the messages and errors a script reads.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where progress draws: stderr at a terminal, nowhere otherwise.
fn target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// A bar for the upload of dataset `name`, hidden until [`show_upload`] gives its size.
pub fn upload(name: &str) -> ProgressBar {
    let bar = ProgressBar::hidden();
    // The template is a constant; a bad one would fail every upload the same way in tests.
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix} [{bar:24}] {bytes}/{total_bytes} · {msg} · {bytes_per_sec} · {elapsed}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(format!("uploading {name}"));
    bar
}

/// Sizes the upload bar (`bytes` of Arrow IPC holding `rows`) and shows it.
pub fn show_upload(bar: &ProgressBar, rows: u64, bytes: u64) {
    bar.set_length(bytes);
    bar.set_message(format!("0/{rows} rows"));
    bar.set_draw_target(target());
}

/// Counts `rows` of `total` sent; once all are, says what the wait is now for.
pub fn uploaded(bar: &ProgressBar, done: u64, total: u64) {
    if done >= total {
        bar.set_message(format!(
            "{total} rows sent; the server encrypts and samples"
        ));
    } else {
        bar.set_message(format!("{done}/{total} rows"));
    }
}

/// A spinner with the time waited so far.
pub fn waiting(what: String) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, target());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(what);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

//! Progress bars for the long operator commands (`ota push`, `fleet rollout`'s pushes, `bench`,
//! `record`), drawn on stderr only when it is a terminal: in logs, pipes and the journal there
//! is nothing of them, and the log lines say the same at their own pace.
//!
//! Log lines written while bars are drawn go through [`suspend`], which takes the bars off the
//! screen for the line and draws them again below it.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::LazyLock;

/// Every bar of the process, drawn together.
static BARS: LazyLock<MultiProgress> = LazyLock::new(|| {
    if std::io::stderr().is_terminal() {
        MultiProgress::with_draw_target(ProgressDrawTarget::stderr())
    } else {
        MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
    }
});

/// A bar of `len` steps drawn with `template` (indicatif's syntax); hidden off a terminal.
pub fn bar(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    if std::io::stderr().is_terminal() {
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        BARS.add(bar)
    } else {
        bar.set_draw_target(ProgressDrawTarget::hidden());
        bar
    }
}

/// Runs `f` (writing a log line) with the bars taken off the screen.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    BARS.suspend(f)
}

/// A writer for log lines that does not tear the bars.
pub struct Stderr;

impl std::io::Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        suspend(|| std::io::stderr().write(buf))
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        suspend(|| std::io::stderr().write_all(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

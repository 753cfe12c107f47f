//! Progress of long commands on stderr. Not a terminal (a pipe, a log, CI): one plain line per
//! step, `[  12s] step (done/total)`, nothing redrawn. A terminal: the same lines, a counted
//! step redrawn in place as its count grows. Stdout is never touched, so `--json` output stays
//! one document.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Instant;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use super::PROGRESS;

/// The layer that writes progress events as lines.
pub struct Lines {
    started: Instant,
    terminal: bool,
    state: Mutex<State>,
    out: Box<dyn Fn(&str) + Send + Sync>,
}

#[derive(Default)]
struct State {
    /// The last line was a counted step left open for redrawing (terminal only): its text.
    open: Option<String>,
}

impl Lines {
    pub fn stderr() -> Self {
        Self::new(std::io::stderr().is_terminal(), |s| {
            let mut e = std::io::stderr().lock();
            let _ = e.write_all(s.as_bytes());
            let _ = e.flush();
        })
    }

    pub fn new(terminal: bool, out: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Lines {
            started: Instant::now(),
            terminal,
            state: Mutex::new(State::default()),
            out: Box::new(out),
        }
    }

    /// What one step writes.
    fn write(&self, step: &str, done: u64, total: u64) {
        let secs = self.started.elapsed().as_secs();
        let mut line = format!("[{secs:>5}s] {step}");
        if let Some(pct) = done.saturating_mul(100).checked_div(total) {
            let _ = write!(line, " ({done}/{total}, {pct}%)");
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut text = String::new();
        if self.terminal {
            let counted = total > 0 && done < total;
            match state.open.take() {
                // The same counted step again: redraw it.
                Some(open) if open == step => text.push_str("\r\x1b[2K"),
                Some(_) => text.push('\n'),
                None => {}
            }
            text.push_str(&line);
            if counted {
                state.open = Some(step.to_owned());
            } else {
                text.push('\n');
            }
        } else {
            text.push_str(&line);
            text.push('\n');
        }
        (self.out)(&text);
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    done: u64,
    total: u64,
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "done" => self.done = value,
            "total" => self.total = value,
            _ => {}
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for Lines {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != PROGRESS {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        self.write(&f.message, f.done, f.total);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn collect(terminal: bool) -> (Lines, Arc<Mutex<String>>) {
        let out = Arc::new(Mutex::new(String::new()));
        let o = out.clone();
        (
            Lines::new(terminal, move |s| o.lock().unwrap().push_str(s)),
            out,
        )
    }

    #[test]
    fn not_a_terminal_gets_one_plain_line_a_step() {
        let (lines, out) = collect(false);
        lines.write("seed: products", 2000, 10000);
        lines.write("seed: products", 4000, 10000);
        lines.write("seed: done", 0, 0);
        let text = out.lock().unwrap().clone();
        assert!(!text.contains('\r') && !text.contains('\x1b'), "{text:?}");
        let got: Vec<&str> = text.lines().map(|l| &l[9..]).collect();
        assert_eq!(
            got,
            [
                "seed: products (2000/10000, 20%)",
                "seed: products (4000/10000, 40%)",
                "seed: done"
            ]
        );
    }

    #[test]
    fn a_terminal_redraws_a_counted_step_in_place() {
        let (lines, out) = collect(true);
        lines.write("seed: products", 2000, 10000);
        lines.write("seed: products", 10000, 10000);
        lines.write("seed: done", 0, 0);
        let text = out.lock().unwrap().clone();
        assert_eq!(text.matches("\r\x1b[2K").count(), 1, "{text:?}");
        assert!(text.ends_with("seed: done\n"), "{text:?}");
    }

    #[test]
    fn progress_events_reach_the_layer_through_tracing() {
        use tracing_subscriber::layer::SubscriberExt;
        let (lines, out) = collect(false);
        let subscriber = tracing_subscriber::registry().with(lines);
        tracing::subscriber::with_default(subscriber, || {
            crate::telemetry::progress("backup: database", 0, 0);
            tracing::info!("not progress");
        });
        let text = out.lock().unwrap().clone();
        assert_eq!(text.lines().count(), 1, "{text:?}");
        assert!(text.ends_with("] backup: database\n"), "{text:?}");
    }
}

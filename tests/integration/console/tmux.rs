//! The real `soko console` in a detached tmux session, read with `capture-pane`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{random_suffix, soko_bin};

/// A detached tmux session on a private tmux server (killed on drop).
pub struct Tmux {
    server: String,
}

impl Tmux {
    pub fn start(config: &Path, width: u16, height: u16) -> Tmux {
        let t = Tmux {
            server: format!("soko-console-{}", random_suffix()),
        };
        let cmd = format!("{} --config {} console", soko_bin(), config.display());
        let ok = t
            .tmux(&[
                "new-session",
                "-d",
                "-s",
                "c",
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
                &cmd,
            ])
            .status
            .success();
        assert!(ok, "tmux new-session failed");
        t
    }

    pub fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.server])
            .args(args)
            .env("TERM", "xterm-256color")
            .output()
            .expect("tmux (installed by scripts/setup)")
    }

    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "c"]).stdout).into_owned()
    }

    pub fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.tmux(&["send-keys", "-t", "c", k]);
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// Poll the screen until `pred` holds; panics with the last screen after `timeout`.
    pub async fn until(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            if start.elapsed() > timeout {
                panic!("waited {timeout:?} for {what}; screen:\n{s}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

//! `soko console`: a full-screen terminal dashboard (ratatui on crossterm) that reads everything
//! through the admin socket and never opens the database. The screen is redrawn from memory
//! several times a second; the status (every second), the log tail and the operator's actions
//! are fetched on background tasks with timeouts, so a slow or dead appliance never freezes the
//! keyboard: the last snapshot stays on screen, greyed, under "disconnected — retrying".

pub mod app;
mod panes;
pub mod sample;
mod sections;
#[cfg(test)]
mod tests;
pub mod view;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ratatui::crossterm::event::{self, Event};
use tokio::sync::mpsc;

use crate::ops::admin::{self, ClientError};
use crate::ops::logs::{LogQuery, LogsView};
use crate::ops::status::{Level, Snapshot};
use app::{Action, App, Command, Tab};

/// How long one status call may take before the console calls the appliance disconnected
/// (a status answer waits up to 3 s for a stopped MySQL's readiness check). A refused
/// connection (soko gone) shows at once.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
pub const REFRESH: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the terminal: {0}")]
    Terminal(#[from] std::io::Error),
}

enum Msg {
    Key(event::KeyEvent),
    Redraw,
    Status(Box<Result<(Snapshot, serde_json::Value), String>>),
    Logs(Result<LogsView, String>),
    Done(String, Level),
}

/// Status as typed snapshot plus the raw JSON (for sections this build does not know).
pub async fn fetch(socket: &Path) -> Result<(Snapshot, serde_json::Value), String> {
    let raw = admin::fetch_status_value(socket, FETCH_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let snapshot =
        serde_json::from_value(raw.clone()).map_err(|e| format!("unreadable status: {e}"))?;
    Ok((snapshot, raw))
}

async fn act(socket: PathBuf, action: Action) -> (String, Level) {
    let t = Duration::from_secs(10);
    let answer = match &action {
        Action::Restart(s) => admin::restart_service(&socket, s, t).await,
        Action::Pause(w) => admin::set_worker_paused(&socket, w, true, t).await,
        Action::Resume(w) => admin::set_worker_paused(&socket, w, false, t).await,
        Action::Backup => admin::run_backup_text(&socket, Duration::from_secs(3600)).await,
        Action::Renew => match admin::renew_tls(&socket, Duration::from_secs(600)).await {
            Ok(None) => {
                return (
                    "HTTPS is off: there is no certificate to renew".into(),
                    Level::Amber,
                );
            }
            Ok(Some(o)) if o.ok => Ok("certificate renewed".into()),
            Ok(Some(o)) => Ok(format!(
                "renewal failed: {}",
                o.error.unwrap_or_else(|| "unknown error".into())
            )),
            Err(e) => Err(e),
        },
    };
    match answer {
        Ok(text) if text.starts_with("renewal failed") => (text, Level::Red),
        Ok(text) => (text, Level::Green),
        Err(ClientError::Status { body, .. }) => (body, Level::Red),
        Err(e) => (e.to_string(), Level::Red),
    }
}

/// Run the dashboard until `q`; the terminal is restored on exit and on panic.
pub async fn run(socket: PathBuf) -> Result<(), Error> {
    let mut terminal = ratatui::try_init()?;
    let result = event_loop(&mut terminal, socket).await;
    ratatui::restore();
    result
}

async fn event_loop(terminal: &mut ratatui::DefaultTerminal, socket: PathBuf) -> Result<(), Error> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    // Keys: a blocking reader thread (crossterm's read) feeding the loop.
    let keys = tx.clone();
    std::thread::spawn(move || {
        loop {
            match event::poll(Duration::from_millis(250)) {
                Ok(true) => match event::read() {
                    Ok(Event::Key(k)) => {
                        if keys.send(Msg::Key(k)).is_err() {
                            return;
                        }
                    }
                    Ok(Event::Resize(..)) => {
                        if keys.send(Msg::Redraw).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                },
                Ok(false) => {
                    if keys.is_closed() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    // Status every second; logs too while the Logs pane is open (the loop says which query).
    let (logs_tx, logs_rx) = tokio::sync::watch::channel::<Option<LogQuery>>(None);
    let (refresh_tx, mut refresh_rx) = mpsc::unbounded_channel::<()>();
    let status = tx.clone();
    let path = socket.clone();
    tokio::spawn(async move {
        loop {
            let (s, logs) = tokio::join!(fetch(&path), async {
                let q = logs_rx.borrow().clone();
                match q {
                    Some(q) => Some(
                        admin::fetch_logs(&path, &q, FETCH_TIMEOUT)
                            .await
                            .map_err(|e| e.to_string()),
                    ),
                    None => None,
                }
            });
            if status.send(Msg::Status(Box::new(s))).is_err() {
                return;
            }
            if let Some(l) = logs {
                let _ = status.send(Msg::Logs(l));
            }
            tokio::select! {
                () = tokio::time::sleep(REFRESH) => {}
                _ = refresh_rx.recv() => {}
            }
        }
    });
    let mut app = App::new(socket.display().to_string());
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let log_query = |app: &App| LogQuery {
        lines: Some(1000),
        level: Some(app.logs_level().to_owned()),
        q: Some(app.logs.query.clone()),
    };
    loop {
        app.now = crate::clock::now_unix();
        terminal.draw(|f| view::draw(f, &app))?;
        let msg = tokio::select! {
            m = rx.recv() => m,
            _ = tick.tick() => Some(Msg::Redraw),
        };
        match msg {
            None => return Ok(()),
            Some(Msg::Redraw) => {}
            Some(Msg::Status(r)) => app.update(*r),
            Some(Msg::Logs(Ok(v))) => {
                app.logs.view = v;
                app.logs.error = None;
            }
            Some(Msg::Logs(Err(e))) => app.logs.error = Some(e),
            Some(Msg::Done(text, level)) => app.say(text, level),
            Some(Msg::Key(k)) => {
                let before = app.tab;
                match app.key(k) {
                    Some(Command::Quit) => return Ok(()),
                    Some(Command::Run(action)) => {
                        app.say(format!("{action:?}: asking the appliance…"), Level::Amber);
                        let (done, path) = (tx.clone(), socket.clone());
                        let refresh = refresh_tx.clone();
                        tokio::spawn(async move {
                            let (text, level) = act(path, action).await;
                            let _ = done.send(Msg::Done(text, level));
                            let _ = refresh.send(());
                        });
                    }
                    Some(Command::RefreshLogs) => {
                        let _ = logs_tx.send(Some(log_query(&app)));
                        let _ = refresh_tx.send(());
                    }
                    None => {}
                }
                if app.tab != before {
                    let q = (app.tab == Tab::Logs).then(|| log_query(&app));
                    let open = q.is_some();
                    let _ = logs_tx.send(q);
                    if open {
                        let _ = refresh_tx.send(());
                    }
                }
            }
        }
    }
}

//! The console's state and its keyboard handling (no I/O here: keys turn into [`Command`]s the
//! event loop carries out on background tasks).

use std::time::Instant;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::ops::logs::LogsView;
use crate::ops::status::{Level, Snapshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Services,
    Traffic,
    Certificates,
    Backups,
    VectorSync,
    Resources,
    Checklist,
    Alerts,
    Logs,
}

impl Tab {
    pub const ALL: [Tab; 9] = [
        Tab::Services,
        Tab::Traffic,
        Tab::Certificates,
        Tab::Backups,
        Tab::VectorSync,
        Tab::Resources,
        Tab::Checklist,
        Tab::Alerts,
        Tab::Logs,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Services => "Services",
            Tab::Traffic => "Traffic",
            Tab::Certificates => "Certs",
            Tab::Backups => "Backups",
            Tab::VectorSync => "Vectors",
            Tab::Resources => "Resources",
            Tab::Checklist => "Checks",
            Tab::Alerts => "Alerts",
            Tab::Logs => "Logs",
        }
    }

    fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }
}

/// Something the operator asked for, run after confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Restart(String),
    Pause(String),
    Resume(String),
    Backup,
    Renew,
}

impl Action {
    pub fn question(&self) -> String {
        match self {
            Action::Restart(s) => {
                format!("Restart {s}? Requests needing it fail until it is back.")
            }
            Action::Pause(w) => format!("Pause the {w} worker? Its jobs wait until resumed."),
            Action::Resume(w) => format!("Resume the {w} worker?"),
            Action::Backup => "Run a backup now?".into(),
            Action::Renew => "Order a new certificate now?".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Quit,
    Run(Action),
    /// The log filters changed: fetch again.
    RefreshLogs,
}

/// A selectable row of the Services pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    Service(String),
    Worker { name: String, paused: bool },
}

pub const LEVELS: [&str; 4] = ["", "info", "warn", "error"];

#[derive(Debug, Default)]
pub struct LogsState {
    pub view: LogsView,
    /// Lines scrolled up from the newest.
    pub scroll: usize,
    /// Index into [`LEVELS`] (0: all).
    pub level: usize,
    pub query: String,
    /// `Some` while typing a search after `/`.
    pub input: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug)]
pub struct App {
    pub tab: Tab,
    pub snapshot: Option<Snapshot>,
    /// The same status as JSON, for sections this console knows only by name (backups,
    /// vector_sync, alerts).
    pub raw: serde_json::Value,
    pub connected: bool,
    pub error: Option<String>,
    /// Unix seconds of the last good status.
    pub last_ok: Option<u64>,
    pub selected: usize,
    pub confirm: Option<Action>,
    pub help: bool,
    /// The last action's answer and when it came.
    pub message: Option<(String, Level, Instant)>,
    pub logs: LogsState,
    /// The clock the panes compute ages with (Unix seconds).
    pub now: u64,
    pub socket: String,
}

impl App {
    pub fn new(socket: String) -> App {
        App {
            tab: Tab::Services,
            snapshot: None,
            raw: serde_json::Value::Null,
            connected: false,
            error: None,
            last_ok: None,
            selected: 0,
            confirm: None,
            help: false,
            message: None,
            logs: LogsState::default(),
            now: 0,
            socket,
        }
    }

    /// A fresh status (or why there is none: the last snapshot stays, greyed).
    pub fn update(&mut self, result: Result<(Snapshot, serde_json::Value), String>) {
        match result {
            Ok((s, raw)) => {
                self.snapshot = Some(s);
                self.raw = raw;
                self.connected = true;
                self.error = None;
                self.last_ok = Some(self.now);
            }
            Err(e) => {
                self.connected = false;
                self.error = Some(e);
            }
        }
        let n = self.rows().len();
        if n > 0 && self.selected >= n {
            self.selected = n - 1;
        }
    }

    pub fn rows(&self) -> Vec<Row> {
        let Some(s) = &self.snapshot else {
            return Vec::new();
        };
        s.services
            .iter()
            .map(|v| Row::Service(v.status.name.clone()))
            .chain(s.workers.iter().map(|w| Row::Worker {
                name: w.name.clone(),
                paused: w.paused,
            }))
            .collect()
    }

    pub fn say(&mut self, text: impl Into<String>, level: Level) {
        self.message = Some((text.into(), level, Instant::now()));
    }

    pub fn logs_level(&self) -> &'static str {
        LEVELS[self.logs.level % LEVELS.len()]
    }

    pub fn key(&mut self, k: KeyEvent) -> Option<Command> {
        if k.kind == KeyEventKind::Release {
            return None;
        }
        if k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL) {
            return Some(Command::Quit);
        }
        if let Some(action) = self.confirm.clone() {
            return match k.code {
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                    self.confirm = None;
                    Some(Command::Run(action))
                }
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc | KeyCode::Char('q') => {
                    self.confirm = None;
                    self.say("cancelled", Level::Amber);
                    None
                }
                _ => None,
            };
        }
        if let Some(input) = self.logs.input.as_mut() {
            match k.code {
                KeyCode::Enter => {
                    self.logs.query = self.logs.input.take().unwrap_or_default();
                    self.logs.scroll = 0;
                    return Some(Command::RefreshLogs);
                }
                KeyCode::Esc => self.logs.input = None,
                KeyCode::Backspace => {
                    input.pop();
                }
                KeyCode::Char(c) => input.push(c),
                _ => {}
            }
            return None;
        }
        if self.help {
            self.help = false;
            return None;
        }
        match k.code {
            KeyCode::Char('q') => return Some(Command::Quit),
            KeyCode::Char('?') => self.help = true,
            KeyCode::Esc => self.message = None,
            KeyCode::Tab | KeyCode::Right => self.switch((self.tab.index() + 1) % Tab::ALL.len()),
            KeyCode::BackTab | KeyCode::Left => {
                self.switch((self.tab.index() + Tab::ALL.len() - 1) % Tab::ALL.len())
            }
            KeyCode::Char(c @ '1'..='9') => self.switch(c as usize - '1' as usize),
            KeyCode::Char('b') => self.confirm = Some(Action::Backup),
            KeyCode::Char('c') => self.confirm = Some(Action::Renew),
            _ if self.tab == Tab::Logs => return self.logs_key(k.code),
            KeyCode::Down | KeyCode::Char('j') => {
                self.selected = (self.selected + 1).min(self.rows().len().saturating_sub(1));
            }
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Char('r') => match self.rows().get(self.selected) {
                Some(Row::Service(name)) => self.confirm = Some(Action::Restart(name.clone())),
                Some(Row::Worker { .. }) => self.say(
                    "workers are paused and resumed (p), not restarted",
                    Level::Amber,
                ),
                None => self.say("select a service first (Services tab)", Level::Amber),
            },
            KeyCode::Char('p') => match self.rows().get(self.selected) {
                Some(Row::Worker { name, paused }) => {
                    self.confirm = Some(if *paused {
                        Action::Resume(name.clone())
                    } else {
                        Action::Pause(name.clone())
                    })
                }
                _ => self.say("select a worker first (Services tab)", Level::Amber),
            },
            _ => {}
        }
        None
    }

    fn switch(&mut self, i: usize) {
        if let Some(t) = Tab::ALL.get(i) {
            self.tab = *t;
        }
    }

    fn logs_key(&mut self, code: KeyCode) -> Option<Command> {
        let max = self.logs.view.lines.len().saturating_sub(1);
        match code {
            KeyCode::Up | KeyCode::Char('k') => self.logs.scroll = (self.logs.scroll + 1).min(max),
            KeyCode::Down | KeyCode::Char('j') => {
                self.logs.scroll = self.logs.scroll.saturating_sub(1)
            }
            KeyCode::PageUp => self.logs.scroll = (self.logs.scroll + 10).min(max),
            KeyCode::PageDown => self.logs.scroll = self.logs.scroll.saturating_sub(10),
            KeyCode::Char('g') | KeyCode::Home => self.logs.scroll = max,
            KeyCode::Char('G') | KeyCode::End => self.logs.scroll = 0,
            KeyCode::Char('l') => {
                self.logs.level = (self.logs.level + 1) % LEVELS.len();
                return Some(Command::RefreshLogs);
            }
            KeyCode::Char('/') => self.logs.input = Some(self.logs.query.clone()),
            KeyCode::Char('x') => {
                self.logs.query.clear();
                return Some(Command::RefreshLogs);
            }
            _ => {}
        }
        None
    }
}

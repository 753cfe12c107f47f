//! De-duplication, as a pure function: from the stored state of every alert and the
//! conditions that hold now, the new states and the notices to send. A condition that starts
//! holding fires once; while it holds, a reminder follows every `remind_after` seconds (and a
//! rise from amber to red is notified at once); when it stops holding, one recovery notice.

use super::Condition;
use crate::ops::check::Level;
use crate::store::alerts::AlertRow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Firing,
    Reminder,
    Resolved,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Firing => "firing",
            Kind::Reminder => "reminder",
            Kind::Resolved => "resolved",
        }
    }
}

/// One alert's new state, with the notice to send about it (if any).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub row: AlertRow,
    pub notify: Option<Kind>,
}

pub fn level_str(l: Level) -> &'static str {
    match l {
        Level::Red => "red",
        _ => "amber",
    }
}

pub fn parse_level(s: &str) -> Level {
    if s == "red" { Level::Red } else { Level::Amber }
}

/// The changes to write; alerts whose state does not change are absent. `unsettled`: keys
/// whose condition cannot be told now (a service between two states): a firing one stays
/// firing rather than resolve and fire again.
pub fn plan(
    stored: &[AlertRow],
    now_holding: &[Condition],
    unsettled: &[String],
    now: i64,
    remind_after: u64,
) -> Vec<Change> {
    let mut out = Vec::new();
    for c in now_holding {
        let level = level_str(c.level);
        let fresh = |count: u32| AlertRow {
            alert_key: c.key.clone(),
            state: "firing".into(),
            level: level.into(),
            summary: c.summary.clone(),
            since: now,
            last_notified: Some(now),
            count,
        };
        match stored.iter().find(|s| s.alert_key == c.key) {
            None => out.push(Change {
                row: fresh(1),
                notify: Some(Kind::Firing),
            }),
            Some(s) if s.state != "firing" => out.push(Change {
                row: fresh(s.count.saturating_add(1)),
                notify: Some(Kind::Firing),
            }),
            Some(s) => {
                let worse = parse_level(&s.level) < c.level;
                let remind = remind_after > 0
                    && s.last_notified
                        .is_none_or(|t| now.saturating_sub(t) >= remind_after as i64);
                let notify = if worse {
                    Some(Kind::Firing)
                } else if remind {
                    Some(Kind::Reminder)
                } else {
                    None
                };
                if notify.is_some() || s.level != level || s.summary != c.summary {
                    out.push(Change {
                        row: AlertRow {
                            level: level.into(),
                            summary: c.summary.clone(),
                            last_notified: if notify.is_some() {
                                Some(now)
                            } else {
                                s.last_notified
                            },
                            ..s.clone()
                        },
                        notify,
                    });
                }
            }
        }
    }
    for s in stored {
        if s.state == "firing"
            && !now_holding.iter().any(|c| c.key == s.alert_key)
            && !unsettled.contains(&s.alert_key)
        {
            out.push(Change {
                row: AlertRow {
                    state: "resolved".into(),
                    since: now,
                    ..s.clone()
                },
                notify: Some(Kind::Resolved),
            });
        }
    }
    out
}

//! The Certificates, Checklist and Logs panes, the replication and this node's leases (below
//! the backups), and the generic pane for sections the console knows only by name (backups,
//! vector sync, alerts): any JSON object drawn as `key: value` lines, coloured by a `level`
//! field when it has one; absent means "not configured".

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use serde_json::Value;

use super::app::App;
use super::view::level_color;
use crate::ops::status::{Level, tls_check, utc};
use crate::ops::status_text::bytes;

fn grey(text: &str) -> Paragraph<'static> {
    Paragraph::new(text.to_owned()).style(Style::default().fg(Color::DarkGray))
}

fn titled(title: &str) -> Block<'static> {
    Block::default()
        .borders(Borders::TOP)
        .title(format!(" {title} "))
}

fn kv(key: &str, value: String) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{key:<14}"), Style::default().fg(Color::Cyan)),
        Span::raw(value),
    ])
}

pub fn certificates(f: &mut Frame, area: Rect, app: &App) {
    let Some(s) = &app.snapshot else {
        return f.render_widget(grey("waiting for the first status…"), area);
    };
    let Some(t) = &s.tls else {
        return f.render_widget(
            grey("HTTPS is off (local mode or tls.mode off): there is no certificate.")
                .block(titled("Certificates")),
            area,
        );
    };
    let check = tls_check(t);
    let opt = |v: Option<i64>| v.map(utc).unwrap_or_else(|| "-".into());
    let mut lines = vec![
        Line::from(Span::styled(
            check.detail.clone(),
            Style::default()
                .fg(level_color(check.level))
                .add_modifier(Modifier::BOLD),
        )),
        kv("mode", t.mode.clone()),
        kv("url", t.https_url.clone()),
        kv("names", t.names.join(", ")),
        kv(
            "issuer",
            if t.issued {
                t.issuer.clone().unwrap_or_else(|| "?".into())
            } else {
                "self-signed".into()
            },
        ),
        kv(
            "expires",
            format!(
                "{}{}",
                opt(t.not_after),
                t.days_left
                    .map(|d| format!(" ({d} days)"))
                    .unwrap_or_default()
            ),
        ),
        kv("next renewal", opt(t.next_renewal)),
        kv("CA", t.ca.clone().unwrap_or_else(|| "-".into())),
        kv("orders", t.orders_placed.to_string()),
    ];
    if t.failures > 0 || t.last_error.is_some() {
        lines.push(Line::from(Span::styled(
            format!(
                "last ACME error ({} failures): {}",
                t.failures,
                t.last_error.as_deref().unwrap_or("-")
            ),
            Style::default().fg(Color::Red),
        )));
    }
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(titled("Certificates (c: renew now)")),
        area,
    );
}

pub fn checklist(f: &mut Frame, area: Rect, app: &App) {
    let Some(s) = &app.snapshot else {
        return f.render_widget(grey("waiting for the first status…"), area);
    };
    let lines: Vec<Line> = s
        .checks
        .iter()
        .map(|c| {
            let (mark, color) = match c.level {
                Level::Green => ("✔", level_color(c.level)),
                Level::Amber => ("!", level_color(c.level)),
                Level::Red => ("✘", level_color(c.level)),
            };
            Line::from(vec![
                Span::styled(
                    format!(" {mark} {:<14}", c.name),
                    Style::default().fg(color).add_modifier(Modifier::BOLD),
                ),
                Span::raw(c.detail.clone()),
            ])
        })
        .collect();
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(titled("Checklist")),
        area,
    );
}

fn scalar(key: &str, v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => {
            let as_u = n.as_u64();
            if key.ends_with("bytes") {
                as_u.map(bytes).unwrap_or_else(|| n.to_string())
            } else if (key.ends_with("_at") || key == "at" || key.ends_with("_unix"))
                && as_u.is_some_and(|t| t > 1_000_000_000)
            {
                utc(as_u.unwrap_or(0) as i64)
            } else {
                n.to_string()
            }
        }
        other => other.to_string(),
    }
}

fn level_of(v: &Value) -> Option<Level> {
    v.get("level")
        .and_then(|l| serde_json::from_value::<Level>(l.clone()).ok())
}

/// `key: value` lines of a JSON value, nested values indented.
pub fn json_lines(v: &Value, indent: usize, out: &mut Vec<Line<'static>>) {
    let pad = " ".repeat(indent);
    let style = level_of(v)
        .map(|l| Style::default().fg(level_color(l)))
        .unwrap_or_default();
    match v {
        Value::Object(map) => {
            for (k, val) in map {
                match val {
                    Value::Object(_) => {
                        out.push(Line::styled(format!("{pad}{k}:"), style));
                        json_lines(val, indent + 2, out);
                    }
                    Value::Array(items) if items.is_empty() => {
                        out.push(Line::styled(format!("{pad}{k}: none"), style));
                    }
                    Value::Array(_) => {
                        out.push(Line::styled(format!("{pad}{k}:"), style));
                        json_lines(val, indent + 2, out);
                    }
                    _ => out.push(Line::styled(format!("{pad}{k}: {}", scalar(k, val)), style)),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                let first = out.len();
                json_lines(item, indent + 2, out);
                // The first line of each item starts with "- " (YAML style).
                if let Some(line) = out.get_mut(first)
                    && let Some(span) = line.spans.first_mut()
                    && item.is_object()
                {
                    let text = span.content.to_string();
                    span.content = format!("{pad}- {}", &text[indent + 2..]).into();
                }
            }
        }
        _ => out.push(Line::styled(format!("{pad}- {}", scalar("", v)), style)),
    }
}

pub fn generic(f: &mut Frame, area: Rect, app: &App, key: &str, title: &str) {
    if app.snapshot.is_none() {
        return f.render_widget(grey("waiting for the first status…"), area);
    }
    match app.raw.get(key) {
        None | Some(Value::Null) => f.render_widget(
            grey(&format!(
                "not configured: this appliance reports no {} (absent from its status)",
                title.to_lowercase()
            ))
            .block(titled(title)),
            area,
        ),
        Some(v) => {
            let mut lines = Vec::new();
            json_lines(v, 0, &mut lines);
            f.render_widget(
                Paragraph::new(lines)
                    .wrap(Wrap { trim: false })
                    .block(titled(title)),
                area,
            );
        }
    }
}

/// This node's role and, on a standby, its replication and photos: the status lines, coloured
/// by the `replication` check.
pub fn replication(f: &mut Frame, area: Rect, app: &App) {
    let Some(s) = app.snapshot.as_ref() else {
        return;
    };
    let mut lines: Vec<Line> = Vec::new();
    if let Some(r) = &s.replication {
        let colour = level_color(r.check().level);
        lines.extend(
            r.line()
                .lines()
                .map(|l| Line::styled(l.trim().to_owned(), Style::default().fg(colour))),
        );
    }
    // Read replicas: green while they get reads, yellow lagging, red down.
    for r in &s.replicas {
        let colour = match r.state {
            crate::store::replicas::ReplicaState::Healthy => Color::Green,
            crate::store::replicas::ReplicaState::Lagging => Color::Yellow,
            crate::store::replicas::ReplicaState::Down => Color::Red,
        };
        lines.push(Line::styled(
            format!("read replica {}", r.line()),
            Style::default().fg(colour),
        ));
    }
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(titled("Replication")),
        area,
    );
}

/// This node's name and role, and every lease of singleton work: its holder, fencing token
/// and time left. This node's leases are green and bold, leases that ran out (free) grey.
pub fn node(f: &mut Frame, area: Rect, app: &App) {
    let Some(n) = app.snapshot.as_ref().and_then(|s| s.node.as_ref()) else {
        return;
    };
    let mut lines = vec![kv("node", format!("{} (role {})", n.name, n.role))];
    match &n.leases {
        None => lines.push(Line::styled(
            "leases unknown (the database does not answer)",
            Style::default().fg(Color::Yellow),
        )),
        Some(l) if l.is_empty() => lines.push(Line::styled(
            "no lease taken yet",
            Style::default().fg(Color::DarkGray),
        )),
        Some(l) => {
            lines.push(Line::styled(
                format!(
                    "{:<20} {:<20} {:>6}  {}",
                    "LEASE", "HOLDER", "TOKEN", "EXPIRES IN"
                ),
                Style::default().fg(Color::Cyan),
            ));
            for x in l {
                let (expires, style) = if x.mine {
                    (
                        format!("{:.1} s  (this node)", x.expires_in_secs),
                        Style::default()
                            .fg(Color::Green)
                            .add_modifier(Modifier::BOLD),
                    )
                } else if x.expires_in_secs > 0.0 {
                    (format!("{:.1} s", x.expires_in_secs), Style::default())
                } else {
                    ("free".to_owned(), Style::default().fg(Color::DarkGray))
                };
                lines.push(Line::styled(
                    format!("{:<20} {:<20} {:>6}  {expires}", x.name, x.holder, x.token),
                    style,
                ));
            }
        }
    }
    f.render_widget(Paragraph::new(lines).block(titled("Node and leases")), area);
}

/// The rows [`node`] needs: its title, the node's line, the lease header and one per lease.
pub fn node_height(app: &App) -> u16 {
    match app.snapshot.as_ref().and_then(|s| s.node.as_ref()) {
        None => 0,
        Some(n) => 3 + n.leases.as_ref().map_or(0, |l| l.len() as u16),
    }
}

/// Sellers' catalogue imports and the re-check's last round (its counts are the sync log's),
/// amber while the re-check is overdue (the `catalogue-recheck` alert).
pub fn catalogue(f: &mut Frame, area: Rect, app: &App) {
    let Some(c) = app.snapshot.as_ref().and_then(|s| s.catalogue.as_ref()) else {
        return;
    };
    let mut lines = vec![Line::raw(c.line())];
    if let Some(why) = c.overdue() {
        lines.push(Line::styled(why, Style::default().fg(Color::Yellow)));
    }
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(titled("Catalogue")),
        area,
    );
}

pub fn logs(f: &mut Frame, area: Rect, app: &App) {
    let l = &app.logs;
    let [bar, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    let filter = format!(
        "level ≥ {}  search: {}",
        if app.logs_level().is_empty() {
            "all"
        } else {
            app.logs_level()
        },
        match &l.input {
            Some(i) => format!("/{i}▏"),
            None if l.query.is_empty() => "-".into(),
            None => format!("{:?}", l.query),
        }
    );
    let right = match (&l.error, l.scroll) {
        (Some(e), _) => Span::styled(e.clone(), Style::default().fg(Color::Red)),
        (None, 0) => Span::raw(format!(
            "{} lines, newest at the bottom",
            l.view.lines.len()
        )),
        (None, n) => Span::raw(format!("scrolled up {n} of {}", l.view.lines.len())),
    };
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(filter, Style::default().fg(Color::Cyan)),
            Span::raw("   "),
            right,
        ])),
        bar,
    );
    let height = body.height as usize;
    let end = l.view.lines.len().saturating_sub(l.scroll);
    let start = end.saturating_sub(height);
    let lines: Vec<Line> = l.view.lines[start..end]
        .iter()
        .map(|x| {
            let color = match x.level.as_str() {
                "ERROR" => Color::Red,
                "WARN" => Color::Yellow,
                "DEBUG" | "TRACE" => Color::DarkGray,
                _ => Color::Gray,
            };
            let time = x.ts.get(11..19).unwrap_or(&x.ts).to_owned();
            Line::from(vec![
                Span::styled(format!("{time} "), Style::default().fg(Color::DarkGray)),
                Span::styled(format!("{:<5} ", x.level), Style::default().fg(color)),
                Span::raw(x.message.clone()),
            ])
        })
        .collect();
    f.render_widget(Paragraph::new(lines), body);
}

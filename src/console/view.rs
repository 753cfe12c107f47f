//! Drawing one frame: header (health and connection), tabs, the selected pane, a footer of key
//! hints or the last action's answer, and the confirmation dialog or key help on top. When the
//! appliance does not answer, the last snapshot stays on screen in grey under a red
//! "disconnected — retrying" header.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Tabs, Wrap};

use super::app::{App, Tab};
use super::{panes, sections};
use crate::ops::status::{Level, human_duration};

pub fn level_color(l: Level) -> Color {
    match l {
        Level::Green => Color::Green,
        Level::Amber => Color::Yellow,
        Level::Red => Color::Red,
    }
}

pub fn draw(f: &mut Frame, app: &App) {
    let [head, tabs, body, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(f.area());
    header(f, head, app);
    let titles: Vec<Line> = Tab::ALL.iter().map(|t| Line::from(t.title())).collect();
    let selected = Tab::ALL.iter().position(|t| *t == app.tab).unwrap_or(0);
    f.render_widget(
        Tabs::new(titles)
            .select(selected)
            .padding("", "")
            .divider(" ")
            .style(Style::default().fg(Color::Gray))
            .highlight_style(
                Style::default()
                    .fg(Color::Black)
                    .bg(Color::Cyan)
                    .add_modifier(Modifier::BOLD),
            ),
        tabs,
    );
    match app.tab {
        Tab::Services => panes::services(f, body, app),
        Tab::Traffic => panes::traffic(f, body, app),
        Tab::Resources => panes::resources(f, body, app),
        Tab::Certificates => sections::certificates(f, body, app),
        Tab::Checklist => sections::checklist(f, body, app),
        // Recovery in one place: the backups (drill, restorable window) and, below, this
        // node's role and replication (a standby's lag, GTID and photos, the read replicas),
        // then this node's name and the leases of singleton work (who runs what).
        Tab::Backups => {
            let s = app.snapshot.as_ref();
            let replication = s.is_some_and(|s| s.replication.is_some() || !s.replicas.is_empty());
            let replicas = s.map_or(0, |s| s.replicas.len() as u16);
            let [top, middle, bottom] = Layout::vertical([
                Constraint::Min(6),
                Constraint::Length(if replication { 5 + replicas } else { 0 }),
                Constraint::Length(sections::node_height(app)),
            ])
            .areas(body);
            sections::generic(f, top, app, "backups", "Backups");
            if replication {
                sections::replication(f, middle, app);
            }
            sections::node(f, bottom, app);
        }
        // The background sync work in one place: Milvus's outbox and, below, sellers'
        // catalogue imports and the heartbeat re-check's last round.
        Tab::VectorSync if app.snapshot.as_ref().is_some_and(|s| s.catalogue.is_some()) => {
            let [top, bottom] =
                Layout::vertical([Constraint::Min(6), Constraint::Length(6)]).areas(body);
            sections::generic(f, top, app, "vector_sync", "Vector sync");
            sections::catalogue(f, bottom, app);
        }
        Tab::VectorSync => sections::generic(f, body, app, "vector_sync", "Vector sync"),
        Tab::Alerts => sections::generic(f, body, app, "alerts", "Alerts"),
        Tab::Logs => sections::logs(f, body, app),
    }
    if !app.connected && app.snapshot.is_some() {
        f.buffer_mut()
            .set_style(body, Style::default().fg(Color::DarkGray));
    }
    footer(f, foot, app);
    if let Some(action) = &app.confirm {
        dialog(f, &action.question());
    } else if app.help {
        help(f);
    }
}

fn header(f: &mut Frame, area: Rect, app: &App) {
    let mut spans = vec![Span::styled(
        " soko ",
        Style::default()
            .fg(Color::Black)
            .bg(Color::Cyan)
            .add_modifier(Modifier::BOLD),
    )];
    if let Some(s) = &app.snapshot {
        let level = s.level();
        spans.push(Span::styled(
            format!(
                " {} ",
                match level {
                    Level::Green => "healthy",
                    Level::Amber => "degraded",
                    Level::Red => "UNHEALTHY",
                }
            ),
            Style::default()
                .fg(level_color(level))
                .add_modifier(Modifier::BOLD),
        ));
        spans.push(Span::raw(format!(
            "v{} up {} pid {} {}",
            s.version,
            human_duration(s.uptime_secs),
            s.pid,
            s.web_url
        )));
    }
    let left = Line::from(spans);
    let right = if app.connected {
        Line::from(Span::styled("● live ", Style::default().fg(Color::Green)))
    } else if app.snapshot.is_none() && app.error.is_none() {
        Line::from(Span::styled(
            "connecting… ",
            Style::default().fg(Color::Yellow),
        ))
    } else {
        let since = app
            .last_ok
            .map(|t| {
                format!(
                    " (last data {} ago)",
                    human_duration(app.now.saturating_sub(t))
                )
            })
            .unwrap_or_default();
        Line::from(Span::styled(
            format!("disconnected — retrying{since} "),
            Style::default()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD),
        ))
    };
    let width = right.width() as u16;
    let [l, r] = Layout::horizontal([Constraint::Min(0), Constraint::Length(width)]).areas(area);
    f.render_widget(Paragraph::new(left), l);
    f.render_widget(Paragraph::new(right), r);
}

fn footer(f: &mut Frame, area: Rect, app: &App) {
    let line = match &app.message {
        Some((text, level, at)) if at.elapsed().as_secs() < 8 => Line::from(Span::styled(
            format!(" {text}"),
            Style::default().fg(level_color(*level)),
        )),
        _ if !app.connected && app.snapshot.is_none() => Line::from(Span::styled(
            format!(
                " {}",
                app.error
                    .clone()
                    .unwrap_or_else(|| format!("connecting to {}", app.socket))
            ),
            Style::default().fg(Color::Red),
        )),
        _ => {
            let hints = match app.tab {
                Tab::Services => {
                    " ↑↓ select  r restart  p pause/resume  b backup  c renew  ? help  q quit"
                }
                Tab::Logs => " ↑↓ PgUp/PgDn scroll  l level  / search  x clear  ? help  q quit",
                _ => " ←→ tabs  1-9 jump  b backup  c renew certs  ? help  q quit",
            };
            Line::from(Span::styled(hints, Style::default().fg(Color::DarkGray)))
        }
    };
    f.render_widget(Paragraph::new(line), area);
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

fn dialog(f: &mut Frame, question: &str) {
    let area = centered(f.area(), 60, 7);
    f.render_widget(Clear, area);
    let text = vec![
        Line::from(question.to_owned()),
        Line::from(""),
        Line::from(vec![
            Span::styled("y", Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(" / Enter: do it    "),
            Span::styled("n", Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(" / Esc: cancel"),
        ]),
    ];
    f.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: true }).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" Confirm ")
                .border_style(Style::default().fg(Color::Yellow)),
        ),
        area,
    );
}

const HELP: &[(&str, &str)] = &[
    ("←→ Tab 1-9", "switch pane"),
    ("↑↓ j k", "select a service or worker / scroll logs"),
    ("r", "restart the selected service"),
    ("p", "pause or resume the selected worker"),
    ("b", "run a backup now"),
    ("c", "renew the certificate now"),
    ("l  /  x", "logs: level filter, search, clear search"),
    ("PgUp PgDn g G", "logs: page, oldest, newest"),
    ("Esc", "dismiss a message"),
    ("q  Ctrl-C", "quit"),
];

fn help(f: &mut Frame) {
    let area = centered(f.area(), 64, HELP.len() as u16 + 4);
    f.render_widget(Clear, area);
    let mut lines: Vec<Line> = HELP
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!("{k:<15}"), Style::default().fg(Color::Cyan)),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::from(
        "Every action asks first. Any key closes this help.",
    ));
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" Keys ")),
        area,
    );
}

//! The Services, Traffic and Resources panes.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Gauge, Paragraph, Row, Sparkline, Table};

use super::app::{App, Row as Selectable};
use super::view::level_color;
use crate::ops::status::{Level, human_duration};
use crate::ops::status_text::{bytes, millis};
use crate::supervisor::State;

fn state_name(s: State) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn dash<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

fn none(f: &mut Frame, area: Rect, what: &str) {
    f.render_widget(
        Paragraph::new(format!("waiting for the first status ({what})…"))
            .style(Style::default().fg(Color::DarkGray)),
        area,
    );
}

pub fn services(f: &mut Frame, area: Rect, app: &App) {
    let Some(s) = &app.snapshot else {
        return none(f, area, "services");
    };
    let wide = area.width >= 100;
    let rows_sel = app.rows();
    let selected = rows_sel.get(app.selected);
    let mut header = vec![
        "", "SERVICE", "STATE", "READY", "PID", "FOR", "RESTARTS", "RSS",
    ];
    let mut widths = vec![
        Constraint::Length(2),
        Constraint::Length(8),
        Constraint::Length(10),
        Constraint::Length(5),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(9),
    ];
    if wide {
        header.push("ENDPOINT");
        widths.push(Constraint::Min(10));
    }
    let mut rows = Vec::new();
    for v in &s.services {
        let st = &v.status;
        let is_sel = selected == Some(&Selectable::Service(st.name.clone()));
        let mut cells = vec![
            Cell::from(if is_sel { "›" } else { " " }),
            Cell::from(st.name.clone()),
            Cell::from(state_name(st.state)),
            Cell::from(if st.ready { "yes" } else { "no" }),
            Cell::from(dash(st.pid)),
            Cell::from(human_duration(app.now.saturating_sub(st.since))),
            Cell::from(st.restarts.to_string()),
            Cell::from(dash(v.rss_bytes.map(bytes))),
        ];
        if wide {
            cells.push(Cell::from(st.endpoint.clone()));
        }
        let mut style = Style::default().fg(level_color(v.level));
        if st.state == State::CrashLoop {
            style = Style::default()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD);
        }
        if is_sel {
            style = style.add_modifier(Modifier::REVERSED);
        }
        rows.push(Row::new(cells).style(style));
    }
    let mut web = vec![
        Cell::from(" "),
        Cell::from("web"),
        Cell::from("running"),
        Cell::from(if s.readiness.ready { "yes" } else { "no" }),
        Cell::from(s.pid.to_string()),
        Cell::from(human_duration(s.uptime_secs)),
        Cell::from("-"),
        Cell::from(dash(s.rss_bytes.map(bytes))),
    ];
    if wide {
        web.push(Cell::from(s.web_url.clone()));
    }
    let web_level = if s.readiness.ready {
        Level::Green
    } else {
        Level::Amber
    };
    rows.push(Row::new(web).style(Style::default().fg(level_color(web_level))));
    let workers: Vec<Row> = s
        .workers
        .iter()
        .map(|w| {
            let is_sel =
                matches!(selected, Some(Selectable::Worker { name, .. }) if *name == w.name);
            let mut style = Style::default().fg(if w.paused {
                Color::Yellow
            } else {
                Color::Green
            });
            if is_sel {
                style = style.add_modifier(Modifier::REVERSED);
            }
            Row::new(vec![
                Cell::from(if is_sel { "›" } else { " " }),
                Cell::from(w.name.clone()),
                Cell::from(w.state.clone()),
                Cell::from(
                    w.last_activity
                        .map(|t| format!("{} ago", human_duration(app.now.saturating_sub(t))))
                        .unwrap_or_else(|| "-".into()),
                ),
                Cell::from(w.detail.clone()),
            ])
            .style(style)
        })
        .collect();
    let n_services = rows.len() as u16 + 1;
    let n_workers = if workers.is_empty() {
        2
    } else {
        workers.len() as u16 + 1
    };
    let [top, mid, bottom] = Layout::vertical([
        Constraint::Length(n_services + 2),
        Constraint::Length(n_workers + 2),
        Constraint::Min(0),
    ])
    .areas(area);
    let bold = Style::default().add_modifier(Modifier::BOLD);
    f.render_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(bold))
            .block(Block::default().borders(Borders::TOP).title(" Services ")),
        top,
    );
    if workers.is_empty() {
        f.render_widget(
            Paragraph::new("no background workers reported")
                .style(Style::default().fg(Color::DarkGray))
                .block(Block::default().borders(Borders::TOP).title(" Workers ")),
            mid,
        );
    } else {
        f.render_widget(
            Table::new(
                workers,
                [
                    Constraint::Length(2),
                    Constraint::Length(12),
                    Constraint::Length(8),
                    Constraint::Length(13),
                    Constraint::Min(10),
                ],
            )
            .header(Row::new(vec!["", "WORKER", "STATE", "LAST ACTIVE", "DETAIL"]).style(bold))
            .block(Block::default().borders(Borders::TOP).title(" Workers ")),
            mid,
        );
    }
    let mut detail: Vec<Line> = Vec::new();
    if let Some(Selectable::Service(name)) = selected
        && let Some(v) = s.services.iter().find(|v| v.status.name == *name)
    {
        let st = &v.status;
        detail.push(Line::from(format!(
            "{}: {} runtime{}, {} consecutive failures",
            st.name,
            st.runtime,
            st.container_id
                .as_ref()
                .map(|id| format!(" (container {id})"))
                .unwrap_or_default(),
            st.consecutive_failures
        )));
        if let Some(why) = &st.runtime_reason {
            detail.push(Line::from(format!("why: {why}")));
        }
        if let Some(e) = &st.last_exit {
            detail.push(Line::from(format!("last exit: {e}")));
        }
        if let Some(e) = &st.last_error {
            detail.push(Line::from(Span::styled(
                format!("last error: {e}"),
                Style::default().fg(Color::Red),
            )));
        }
    }
    f.render_widget(
        Paragraph::new(detail)
            .wrap(ratatui::widgets::Wrap { trim: true })
            .block(Block::default().borders(Borders::TOP).title(" Selected ")),
        bottom,
    );
}

pub fn traffic(f: &mut Frame, area: Rect, app: &App) {
    let Some(t) = app.snapshot.as_ref().and_then(|s| s.traffic.as_ref()) else {
        return none(f, area, "traffic");
    };
    let n = t.series.len().max(1) as u16;
    let each = (area.height / n).max(2);
    let constraints: Vec<Constraint> = t.series.iter().map(|_| Constraint::Length(each)).collect();
    let areas = Layout::vertical(constraints).split(area);
    for (x, a) in t.series.iter().zip(areas.iter()) {
        let [title, spark] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(*a);
        let err_style = if x.error_rate >= 0.05 {
            Style::default().fg(Color::Red)
        } else if x.error_rate > 0.0 {
            Style::default().fg(Color::Yellow)
        } else {
            Style::default()
        };
        let line = Line::from(vec![
            Span::styled(
                format!("{:<13}", x.name),
                Style::default()
                    .fg(Color::Cyan)
                    .add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!("{:>8.2}/s ", x.rate)),
            Span::styled(format!("err {:>5.1}% ", x.error_rate * 100.0), err_style),
            Span::raw(format!(
                " p50 {} p95 {} p99 {} ms",
                millis(x.p50_ms),
                millis(x.p95_ms),
                millis(x.p99_ms)
            )),
        ]);
        f.render_widget(Paragraph::new(line), title);
        if spark.height == 0 {
            continue;
        }
        let halves: Vec<Rect> = if spark.width >= 100 {
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .split(spark)
                .to_vec()
        } else {
            vec![spark]
        };
        let take = |w: u16| x.points.len().saturating_sub(w as usize);
        let counts: Vec<u64> = x.points[take(halves[0].width)..]
            .iter()
            .map(|p| p.count)
            .collect();
        f.render_widget(
            Sparkline::default()
                .data(&counts)
                .style(Style::default().fg(Color::Green)),
            halves[0],
        );
        if let Some(right) = halves.get(1) {
            let p95: Vec<u64> = x.points[take(right.width)..]
                .iter()
                .map(|p| p.p95_ms.map(|m| (m * 10.0) as u64).unwrap_or(0))
                .collect();
            f.render_widget(
                Sparkline::default()
                    .data(&p95)
                    .style(Style::default().fg(Color::Magenta)),
                *right,
            );
        }
    }
}

pub fn resources(f: &mut Frame, area: Rect, app: &App) {
    let Some(r) = app.snapshot.as_ref().and_then(|s| s.resources.as_ref()) else {
        return none(f, area, "resources");
    };
    let [disk, parts, mem, procs] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(2),
        Constraint::Length(2),
        Constraint::Min(0),
    ])
    .areas(area);
    let level = match r.disk_used_percent {
        p if p >= 95.0 => Level::Red,
        p if p >= 85.0 => Level::Amber,
        _ => Level::Green,
    };
    let [dl, dg] = Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(disk);
    f.render_widget(
        Paragraph::new(format!(
            "disk of {}: {} free of {}",
            r.data_dir,
            bytes(r.disk_free_bytes),
            bytes(r.disk_total_bytes)
        )),
        dl,
    );
    f.render_widget(
        Gauge::default()
            .ratio((r.disk_used_percent / 100.0).clamp(0.0, 1.0))
            .label(format!("{:.1}% used", r.disk_used_percent))
            .gauge_style(Style::default().fg(level_color(level))),
        dg,
    );
    let parts_text = match r.data_dir_bytes {
        Some(total) => {
            let list: Vec<String> = r
                .parts
                .iter()
                .map(|p| format!("{} {}", p.name, bytes(p.bytes)))
                .collect();
            format!("data dir {}: {}", bytes(total), list.join(", "))
        }
        None => "data dir: measuring…".into(),
    };
    f.render_widget(
        Paragraph::new(parts_text).wrap(ratatui::widgets::Wrap { trim: true }),
        parts,
    );
    let mem_text = match (r.memory_total_bytes, r.memory_available_bytes) {
        (Some(t), Some(a)) => format!("memory: {} available of {}", bytes(a), bytes(t)),
        _ => "memory: unknown".into(),
    };
    f.render_widget(Paragraph::new(mem_text), mem);
    let rows: Vec<Row> = r
        .processes
        .iter()
        .map(|p| {
            Row::new(vec![
                p.name.clone(),
                dash(p.pid),
                dash(p.rss_bytes.map(bytes)),
                dash(p.memory_limit_bytes.map(bytes)),
                dash(p.cpu_percent.map(|c| format!("{c:.1}%"))),
                dash(p.cpu_seconds.map(|c| format!("{c:.1}s"))),
                dash(p.open_fds),
            ])
        })
        .collect();
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(10),
                Constraint::Length(8),
                Constraint::Length(10),
                Constraint::Length(10),
                Constraint::Length(8),
                Constraint::Length(10),
                Constraint::Length(6),
            ],
        )
        .header(
            Row::new(vec![
                "PROCESS", "PID", "MEMORY", "LIMIT", "CPU", "CPU TIME", "FDS",
            ])
            .style(Style::default().add_modifier(Modifier::BOLD)),
        )
        .block(Block::default().borders(Borders::TOP).title(" Processes ")),
        procs,
    );
}

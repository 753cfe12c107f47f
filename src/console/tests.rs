//! The console drawn into ratatui's `TestBackend` from the known sample status, compared with
//! checked-in screens in `src/console/testdata/` (rewrite them with `SOKO_UPDATE_SCREENS=1`
//! after an intended change, and read the diff).

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::Color;

use super::app::{Action, App, Command, Tab};
use super::{sample, view};
use crate::ops::logs::{LogLine, LogsView};

fn app() -> App {
    let mut app = App::new("/var/lib/soko/run/admin.sock".into());
    app.now = sample::NOW;
    let s = sample::snapshot();
    let raw = sample::raw(&s);
    app.update(Ok((s, raw)));
    app
}

fn render(app: &App, w: u16, h: u16) -> (String, ratatui::buffer::Buffer) {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| view::draw(f, app)).unwrap();
    let buf = t.backend().buffer().clone();
    let mut text = String::new();
    for y in 0..h {
        let line: String = (0..w).map(|x| buf[(x, y)].symbol()).collect();
        text.push_str(line.trim_end());
        text.push('\n');
    }
    (text, buf)
}

fn compare(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/console/testdata")
        .join(format!("{name}.txt"));
    if std::env::var_os("SOKO_UPDATE_SCREENS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with SOKO_UPDATE_SCREENS=1)", path.display()));
    assert_eq!(
        actual,
        expected,
        "screen {name} differs from {}:\n{actual}",
        path.display()
    );
}

fn key(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

#[test]
fn every_pane_matches_its_screen_at_80x24_and_120x40() {
    for (w, h) in [(80, 24), (120, 40)] {
        for tab in Tab::ALL {
            let mut a = app();
            a.tab = tab;
            if tab == Tab::Logs {
                a.logs.view = LogsView {
                    file: "combined.log".into(),
                    lines: (0..30)
                        .map(|i| LogLine {
                            ts: format!("2027-01-15T08:00:{i:02}.000Z"),
                            level: if i % 10 == 0 { "WARN" } else { "INFO" }.into(),
                            target: "soko".into(),
                            message: format!("request {i} served status=200"),
                        })
                        .collect(),
                };
            }
            let (text, _) = render(&a, w, h);
            compare(&format!("{}-{w}x{h}", tab.title().to_lowercase()), &text);
        }
    }
}

#[test]
fn crash_loop_is_highlighted_and_disconnection_greys_the_last_snapshot() {
    let a = app();
    let (text, buf) = render(&a, 80, 24);
    let y = text.lines().position(|l| l.contains("milvus")).unwrap() as u16;
    let x = text
        .lines()
        .nth(y as usize)
        .unwrap()
        .find("milvus")
        .unwrap() as u16;
    assert_eq!(buf[(x, y)].bg, Color::Red, "crash-loop row in red");
    assert!(text.contains("● live"));
    let mut a = app();
    a.update(Err("soko is not running (no admin socket at /x)".into()));
    a.now = sample::NOW + 7;
    let (text, buf) = render(&a, 80, 24);
    assert!(
        text.lines()
            .next()
            .unwrap()
            .contains("disconnected — retrying (last data 7s ago)"),
        "{text}"
    );
    assert!(text.contains("mysql"), "the last snapshot stays: {text}");
    assert_eq!(buf[(x, y)].fg, Color::DarkGray, "greyed");
    compare("disconnected-80x24", &text);
}

#[test]
fn keys_select_confirm_and_run_actions() {
    let mut a = app();
    assert_eq!(a.key(key(KeyCode::Char('r'))), None);
    assert_eq!(a.confirm, Some(Action::Restart("mysql".into())));
    let (text, _) = render(&a, 80, 24);
    assert!(text.contains("Restart mysql?"), "{text}");
    compare("confirm-80x24", &text);
    assert_eq!(
        a.key(key(KeyCode::Char('y'))),
        Some(Command::Run(Action::Restart("mysql".into())))
    );
    // Down twice: milvus, then the images worker; p pauses it; n cancels.
    a.key(key(KeyCode::Down));
    a.key(key(KeyCode::Down));
    a.key(key(KeyCode::Char('p')));
    assert_eq!(a.confirm, Some(Action::Pause("images".into())));
    assert_eq!(a.key(key(KeyCode::Char('n'))), None);
    assert_eq!(a.confirm, None);
    a.key(key(KeyCode::Down));
    a.key(key(KeyCode::Char('p')));
    assert_eq!(a.confirm, Some(Action::Resume("vector_sync".into())));
    a.key(key(KeyCode::Esc));
    a.key(key(KeyCode::Char('b')));
    assert_eq!(
        a.key(key(KeyCode::Enter)),
        Some(Command::Run(Action::Backup))
    );
    // Tabs, the logs search and level filter.
    a.key(key(KeyCode::Char('9')));
    assert_eq!(a.tab, Tab::Logs);
    a.key(key(KeyCode::Char('/')));
    for c in "mysql".chars() {
        a.key(key(KeyCode::Char(c)));
    }
    assert_eq!(a.key(key(KeyCode::Enter)), Some(Command::RefreshLogs));
    assert_eq!(a.logs.query, "mysql");
    assert_eq!(a.key(key(KeyCode::Char('l'))), Some(Command::RefreshLogs));
    assert_eq!(a.logs_level(), "info");
    a.key(key(KeyCode::Char('?')));
    assert!(a.help);
    let (text, _) = render(&a, 80, 24);
    assert!(text.contains("restart the selected service"), "{text}");
    a.key(key(KeyCode::Char('x')));
    assert!(!a.help);
    assert_eq!(a.key(key(KeyCode::Char('q'))), Some(Command::Quit));
}

#[test]
fn status_text_shows_workers_traffic_and_resources() {
    let s = sample::snapshot();
    let text = crate::ops::status::render_text(&s, sample::NOW);
    assert!(
        text.contains("warn  vector_sync  paused        5m 0s ago  outbox backlog 12"),
        "{text}"
    );
    assert!(text.contains("TRAFFIC (last 60s)"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("http") && l.contains("42.50") && l.contains("1.2%")),
        "{text}"
    );
    assert!(
        text.contains("RESOURCES disk 75.0% used, 20.0 GiB free of 80.0 GiB | data dir 13.0 GiB"),
        "{text}"
    );
    assert!(
        text.contains("mysql    pid    4300  rss   410 MiB  cpu   7.2%"),
        "{text}"
    );
}

#[test]
fn tiny_terminals_and_an_empty_console_draw_without_panicking() {
    for (w, h) in [(1, 1), (20, 5), (40, 10), (79, 23)] {
        for tab in Tab::ALL {
            let mut a = app();
            a.tab = tab;
            a.confirm = Some(Action::Backup);
            render(&a, w, h);
            let mut empty = App::new("/nowhere".into());
            empty.tab = tab;
            empty.help = true;
            render(&empty, w, h);
        }
    }
    let mut empty = App::new("/nowhere/admin.sock".into());
    let (text, _) = render(&empty, 80, 24);
    assert!(text.contains("connecting…"), "{text}");
    empty.update(Err(
        "soko is not running (no admin socket at /nowhere/admin.sock)".into(),
    ));
    let (text, _) = render(&empty, 80, 24);
    assert!(text.contains("disconnected — retrying"), "{text}");
    assert!(text.contains("soko is not running"), "{text}");
}

#[test]
fn the_backups_tab_shows_a_standbys_replication_and_photos_below_the_backups() {
    let mut s = sample::snapshot();
    s.replication = Some(crate::ops::replication_view::ReplicationView {
        role: "standby".into(),
        replica: Some(crate::store::replication::ReplicaStatus {
            primary: "10.0.0.5:3307".into(),
            io_running: "Yes".into(),
            sql_running: true,
            seconds_behind: Some(1),
            gtid: "7-7-1200".into(),
            last_error: None,
        }),
        error: None,
        images: Some(crate::workers::image_follow::FollowView {
            source: Some("http://10.0.0.5:8080".into()),
            rows: 900,
            missing: 12,
            last_round_unix: Some(sample::NOW),
            ..Default::default()
        }),
    });
    let raw = sample::raw(&s);
    let mut a = App::new("/var/lib/soko/run/admin.sock".into());
    a.now = sample::NOW;
    a.update(Ok((s, raw)));
    a.tab = Tab::Backups;
    let (text, _) = render(&a, 120, 40);
    for want in [
        "Backups",
        "Replication",
        "standby of 10.0.0.5:3307",
        "7-7-1200",
        "photos: 888 of 900 here",
    ] {
        assert!(text.contains(want), "{want} in\n{text}");
    }
}

#[test]
fn the_vectors_tab_shows_the_catalogue_re_check_below_the_vector_sync() {
    let mut s = sample::snapshot();
    s.catalogue = Some(crate::ops::catalogue_view::CatalogueView {
        imports_running: 1,
        pages_queued: 37,
        last_run: Some(crate::store::imports::Run {
            id: 9,
            state: "completed".into(),
            reason: "schedule".into(),
            started_at: "2026-12-05T06:00:00Z".into(),
            finished_at: Some("2026-12-05T06:02:10Z".into()),
            checked: 412,
            unchanged: 400,
            updated: 7,
            gone: 3,
            restored: 1,
            errors: 2,
            taken_down: 0,
            age_secs: 600,
        }),
        recheck_lag_secs: Some(30 * 3600),
        alert_after_secs: 24 * 3600,
    });
    let raw = sample::raw(&s);
    let mut a = App::new("/var/lib/soko/run/admin.sock".into());
    a.now = sample::NOW;
    a.update(Ok((s, raw)));
    a.tab = Tab::VectorSync;
    let (text, _) = render(&a, 120, 40);
    for want in [
        "Vector sync",
        "Catalogue",
        "1 imports running, 37 pages waiting",
        "412 checked, 400 unchanged, 7 updated",
        "has not completed a round for 30 h (alert after 24 h)",
    ] {
        assert!(text.contains(want), "{want} in\n{text}");
    }
}

#[test]
fn the_backups_tab_shows_each_read_replica_with_its_state_and_lag() {
    use crate::store::replicas::{ReplicaState, ReplicaView};
    let mut s = sample::snapshot();
    s.replicas = vec![
        ReplicaView {
            name: "10.0.0.7:3306".into(),
            state: ReplicaState::Healthy,
            lag_secs: Some(0.3),
            error: None,
            reads: 1200,
        },
        ReplicaView {
            name: "10.0.0.8:3306".into(),
            state: ReplicaState::Down,
            lag_secs: None,
            error: Some("did not answer in time".into()),
            reads: 7,
        },
    ];
    let raw = sample::raw(&s);
    let mut a = App::new("/var/lib/soko/run/admin.sock".into());
    a.now = sample::NOW;
    a.update(Ok((s, raw)));
    a.tab = Tab::Backups;
    let (text, _) = render(&a, 140, 40);
    for want in [
        "read replica 10.0.0.7:3306: healthy · 0.3 s behind · 1200 reads",
        "read replica 10.0.0.8:3306: down · lag unknown · 7 reads · did not answer in time",
    ] {
        assert!(text.contains(want), "{want} in\n{text}");
    }
}

#[test]
fn the_backups_tab_shows_this_node_and_who_holds_each_lease() {
    use crate::ops::node_view::NodeView;
    use crate::store::leases::LeaseRow;
    let row = |name: &str, holder: &str, token, ms| LeaseRow {
        name: name.into(),
        holder: holder.into(),
        token,
        acquired_at: sample::NOW as i64 - 60,
        expires_in_ms: ms,
    };
    let mut s = sample::snapshot();
    s.node = Some(NodeView::new(
        "shop-1.nbo".into(),
        "all".into(),
        Some(vec![
            row("acme-renewal", "shop-2.nbo", 4, 21_500),
            row("alerts", "shop-1.nbo", 2, -3_000),
            row("backups", "shop-1.nbo", 7, 12_400),
        ]),
    ));
    let raw = sample::raw(&s);
    let mut a = App::new("/var/lib/soko/run/admin.sock".into());
    a.now = sample::NOW;
    a.update(Ok((s, raw)));
    a.tab = Tab::Backups;
    for (w, h) in [(80, 24), (120, 40)] {
        let (text, buf) = render(&a, w, h);
        let at = |what: &str| {
            let y = text
                .lines()
                .position(|l| l.contains(what))
                .unwrap_or_else(|| panic!("{what} in\n{text}"));
            let line: Vec<char> = text.lines().nth(y).unwrap().chars().collect();
            let x = (0..line.len())
                .find(|&i| line[i..].iter().collect::<String>().starts_with(what))
                .unwrap();
            (x as u16, y as u16)
        };
        for want in [
            "Backups",
            "Node and leases",
            "shop-1.nbo (role all)",
            "acme-renewal         shop-2.nbo                4  21.5 s",
            "backups              shop-1.nbo                7  12.4 s  (this node)",
            "alerts               shop-1.nbo                2  free",
        ] {
            assert!(text.contains(want), "{want} in\n{text}");
        }
        let mine = buf[at("backups              shop-1.nbo")].style();
        assert_eq!(mine.fg, Some(Color::Green), "this node's lease in green");
        assert!(mine.add_modifier.contains(ratatui::style::Modifier::BOLD));
        assert_eq!(buf[at("alerts               shop-1")].fg, Color::DarkGray);
        assert_eq!(
            buf[at("acme-renewal")].fg,
            Color::Reset,
            "another node's: plain"
        );
    }
    // The database does not answer: the node still shows, the leases say why they do not.
    let mut s = sample::snapshot();
    s.node = Some(NodeView::new("shop-1.nbo".into(), "web".into(), None));
    let raw = sample::raw(&s);
    a.update(Ok((s, raw)));
    let (text, _) = render(&a, 80, 24);
    assert!(text.contains("shop-1.nbo (role web)"), "{text}");
    assert!(
        text.contains("leases unknown (the database does not answer)"),
        "{text}"
    );
}

//! `soko cert status` and `soko cert renew`: the running appliance's certificate, over the
//! admin socket (names, issuer, expiry, next renewal, last error), and a renewal on demand.

use crate::config::Config;
use std::fmt::Write;
use std::process::ExitCode;
use std::time::Duration;

use super::{EXIT_CONFIG, EXIT_NOT_RUNNING};
use crate::ops::admin::{self, ClientError};
use crate::ops::status::{Level, TlsView, tls_check, utc};

/// An order is two challenge types of up to 180 s each at worst.
const RENEW_TIMEOUT: Duration = Duration::from_secs(400);

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// The served certificate: names, issuer, expiry, next renewal, last error (exit 1 when
    /// it is expired or about to be).
    Status {
        /// Print it as JSON (`null` when HTTPS is off).
        #[arg(long)]
        json: bool,
    },
    /// Ask the running appliance for a new certificate now and print the outcome (exit 1 when
    /// the order failed; the current certificate is still served).
    Renew {
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cfg: Config, args: Args) -> anyhow::Result<ExitCode> {
    let socket = cfg.admin_socket();
    match args.command {
        Command::Status { json } => {
            let tls = match admin::fetch_tls(&socket, Duration::from_secs(10)).await {
                Ok(t) => t,
                Err(e) => return Ok(failed(e)),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&tls)?);
            }
            let Some(tls) = tls else {
                if !json {
                    println!("{}", off_message(&cfg));
                }
                return Ok(ExitCode::SUCCESS);
            };
            if !json {
                print!("{}", render(&tls));
            }
            Ok(if tls_check(&tls).level == Level::Red {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Renew { json } => {
            if !json {
                eprintln!("soko: asking the appliance for a new certificate ...");
            }
            let outcome = match admin::renew_tls(&socket, RENEW_TIMEOUT).await {
                Ok(Some(o)) => o,
                Ok(None) => {
                    eprintln!("soko: {}; nothing to renew", off_message(&cfg));
                    return Ok(ExitCode::from(EXIT_CONFIG));
                }
                Err(e) => return Ok(failed(e)),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&outcome)?);
            } else if outcome.ok {
                println!(
                    "renewed: serial {}",
                    outcome.tls.serial.as_deref().unwrap_or("?")
                );
                print!("{}", render(&outcome.tls));
            } else {
                println!(
                    "renewal failed: {}",
                    outcome.error.as_deref().unwrap_or("unknown error")
                );
                println!("the current certificate is still served:");
                print!("{}", render(&outcome.tls));
            }
            Ok(if outcome.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn off_message(cfg: &crate::config::Config) -> String {
    if cfg.is_local_mode() {
        "HTTPS is off: local mode (no domain), plain HTTP on loopback; set domain, or \
         tls.mode: self-signed"
            .into()
    } else {
        "HTTPS is off (tls.mode: off)".into()
    }
}

fn failed(e: ClientError) -> ExitCode {
    match e {
        e @ ClientError::NotRunning(_) => {
            eprintln!("soko: {e}; start it with `soko up`");
            ExitCode::from(EXIT_NOT_RUNNING)
        }
        e => {
            eprintln!("soko: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The certificate as `soko cert status` prints it.
pub fn render(t: &TlsView) -> String {
    let mut out = String::new();
    let dash = || "-".to_string();
    let when = |secs: Option<i64>| secs.map(utc).unwrap_or_else(dash);
    let _ = writeln!(out, "https         {} ({})", t.https_url, t.mode);
    let _ = writeln!(out, "names         {}", t.names.join(", "));
    let what = match (t.mode.as_str(), t.issued) {
        (_, true) => format!("issued by {}", t.issuer.as_deref().unwrap_or("?")),
        ("acme", false) => "temporary self-signed (the first certificate is on its way)".into(),
        _ => "self-signed (browsers warn)".into(),
    };
    let _ = writeln!(out, "certificate   {what}");
    let _ = writeln!(
        out,
        "serial        {}",
        t.serial.clone().unwrap_or_else(dash)
    );
    let days = t
        .days_left
        .map(|d| format!(" ({d} days left)"))
        .unwrap_or_default();
    let _ = writeln!(out, "expires       {}{days}", when(t.not_after));
    let _ = writeln!(out, "next renewal  {}", when(t.next_renewal));
    if let Some(ca) = &t.ca {
        let _ = writeln!(out, "ca            {ca}");
        let _ = writeln!(
            out,
            "orders        {} since start, {} failures in a row",
            t.orders_placed, t.failures
        );
    }
    let _ = writeln!(
        out,
        "last error    {}",
        t.last_error.clone().unwrap_or_else(dash)
    );
    let check = tls_check(t);
    let _ = writeln!(
        out,
        "check         {} {}",
        match check.level {
            Level::Green => "ok:",
            Level::Amber => "warn:",
            Level::Red => "FAIL:",
        },
        check.detail
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_issuer_expiry_renewal_and_error() {
        let t = TlsView {
            mode: "acme".into(),
            https_url: "https://shop.test".into(),
            ca: Some("https://ca.test/dir".into()),
            names: vec!["shop.test".into(), "www.shop.test".into()],
            issued: true,
            issuer: Some("CN=Test CA".into()),
            serial: Some("0a:0b".into()),
            not_after: Some(1_800_000_000),
            days_left: Some(40),
            next_renewal: Some(1_790_000_000),
            failures: 1,
            last_error: Some("connection refused".into()),
            alert: Some("certificate renewal failing".into()),
            orders_placed: 2,
        };
        let text = render(&t);
        for want in [
            "shop.test, www.shop.test",
            "issued by CN=Test CA",
            "expires       2027-01-15 08:00 UTC (40 days left)",
            "next renewal  2026-09-21",
            "last error    connection refused",
            "warn: certificate renewal failing",
        ] {
            assert!(text.contains(want), "{want:?} in\n{text}");
        }
    }
}

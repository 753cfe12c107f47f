//! A container's output into the appliance log (`combined.log` / `error.log`), one event a
//! line, tagged with its service, as for child processes. The engine's log stream ends when the
//! engine restarts; while the container runs it is followed again from its start, skipping the
//! lines already forwarded (podman 4.3 ignores `since`, so counting is what works on both).

use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::{InspectContainerOptions, LogsOptions};
use futures_util::StreamExt;

use super::super::runtime::log_line;

pub async fn forward(docker: Docker, id: String, service: &'static str) {
    let mut forwarded = 0u64;
    loop {
        let mut seen = 0u64;
        let mut stream = docker.logs(
            &id,
            Some(LogsOptions {
                follow: true,
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        );
        let mut pending = String::new();
        while let Some(item) = stream.next().await {
            let bytes = match item {
                Ok(
                    LogOutput::StdOut { message }
                    | LogOutput::StdErr { message }
                    | LogOutput::Console { message },
                ) => message,
                Ok(LogOutput::StdIn { .. }) => continue,
                Err(_) => break,
            };
            pending.push_str(&String::from_utf8_lossy(&bytes));
            while let Some(end) = pending.find('\n') {
                let line: String = pending.drain(..=end).collect();
                seen += 1;
                if seen > forwarded {
                    forwarded = seen;
                    log_line(service, line.trim_end());
                }
            }
        }
        if !pending.trim().is_empty() && seen + 1 > forwarded {
            forwarded = seen + 1;
            log_line(service, pending.trim_end());
        }
        // Ended: the container stopped (done), or the engine went away (follow again, from
        // this second: a line may repeat, none is lost).
        let running = loop {
            match docker
                .inspect_container(&id, None::<InspectContainerOptions>)
                .await
            {
                Ok(c) => break c.state.and_then(|s| s.running).unwrap_or(false),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => break false,
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        };
        if !running {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

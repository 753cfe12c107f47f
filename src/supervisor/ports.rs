//! Is a port free, and if not, who holds it? Read from `/proc/net/tcp{,6}` and `/proc/*/fd`, so
//! the message can name the program in the way.

use std::net::{SocketAddr, TcpListener};

#[derive(Debug, thiserror::Error)]
#[error("port {port} needed by {service} is already in use{}; stop it or choose another port in appliance.yaml", holder.as_ref().map(|h| format!(" by {h}")).unwrap_or_default())]
pub struct PortInUse {
    pub port: u16,
    pub service: String,
    pub holder: Option<String>,
}

/// Free on loopback (the address every Soko service binds)?
pub fn ensure_free(port: u16, service: &str) -> Result<(), PortInUse> {
    ensure_free_at(SocketAddr::from(([127, 0, 0, 1], port)), service)
}

pub fn ensure_free_at(addr: SocketAddr, service: &str) -> Result<(), PortInUse> {
    if addr.port() == 0 {
        return Ok(());
    }
    match TcpListener::bind(addr) {
        Ok(_) => Ok(()),
        Err(_) => Err(PortInUse {
            port: addr.port(),
            service: service.to_owned(),
            holder: holder_of(addr.port()),
        }),
    }
}

/// "pid 1234 (mysqld)" for the process listening on `port`, when we may see it.
pub fn holder_of(port: u16) -> Option<String> {
    let inode = listening_inode(port)?;
    let needle = format!("socket:[{inode}]");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == needle) {
                let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                return Some(format!("pid {pid} ({})", comm.trim()));
            }
        }
    }
    None
}

fn listening_inode(port: u16) -> Option<String> {
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // local_address is "HEXIP:HEXPORT"; state 0A is LISTEN; inode is column 10.
            if cols.len() > 9
                && cols[3] == "0A"
                && cols[1]
                    .rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                    == Some(port)
            {
                return Some(cols[9].to_owned());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_names_the_service_and_the_holder() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let err = ensure_free(port, "mysql").unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&format!("port {port}")), "{text}");
        assert!(text.contains("mysql"), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        // The same port on another loopback address is free. (Not the same address after
        // `drop`: the kernel may hand the port to a parallel test's outgoing connection.)
        assert!(ensure_free_at(SocketAddr::from(([127, 0, 0, 2], port)), "mysql").is_ok());
        drop(held);
    }
}

//! Lower CPU (and disk) priority for background work. Linux applies scheduling policy and
//! nice value per thread, so a pool whose threads lower themselves as they start runs its
//! work behind the shop's threads without touching them; a lowered thread cannot raise itself
//! again (that needs CAP_SYS_NICE), which is what we want.

use std::io;

use crate::config::background;

/// How far background work steps back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// SCHED_BATCH and nice 19: the CPU share of a nice-19 thread beside busy nice-0 threads
    /// is about 1.5 %.
    Batch,
    /// SCHED_IDLE: runs only when nothing else wants the core.
    Idle,
    /// As the shop (nothing changed).
    Normal,
}

impl From<background::Priority> for Priority {
    fn from(p: background::Priority) -> Self {
        match p {
            background::Priority::Batch => Priority::Batch,
            background::Priority::Idle => Priority::Idle,
            background::Priority::Normal => Priority::Normal,
        }
    }
}

static CONFIGURED: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// The priority `background.priority` asked for (set when the background pool is built;
/// `Batch` before).
pub fn configured() -> Priority {
    match CONFIGURED.load(std::sync::atomic::Ordering::Relaxed) {
        1 => Priority::Idle,
        2 => Priority::Normal,
        _ => Priority::Batch,
    }
}

pub fn set_configured(p: Priority) {
    let n = match p {
        Priority::Batch => 0,
        Priority::Idle => 1,
        Priority::Normal => 2,
    };
    CONFIGURED.store(n, std::sync::atomic::Ordering::Relaxed);
}

/// The nice value a lowered thread or child gets.
pub const NICE: i32 = 19;

/// Lower the calling thread (only it: Linux schedules threads one by one).
pub fn lower_current_thread(p: Priority) -> io::Result<()> {
    let (policy, nice) = match p {
        Priority::Normal => return Ok(()),
        Priority::Batch => (libc::SCHED_BATCH, NICE),
        Priority::Idle => (libc::SCHED_IDLE, NICE),
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain system calls on the calling thread with a valid parameter block.
    unsafe {
        if libc::sched_setscheduler(0, policy, &param) != 0 {
            return Err(io::Error::last_os_error());
        }
        let tid = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A pool of `threads` threads named `soko-bg-N`, each lowered to `p` as it starts (a thread
/// that cannot be lowered says so in the log and runs anyway).
pub fn pool(threads: usize, p: Priority) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("soko-bg-{i}"))
        .start_handler(move |i| {
            if let Err(e) = lower_current_thread(p) {
                tracing::warn!(
                    thread = i,
                    "cannot lower a background thread's priority: {e}"
                );
            }
        })
        .build()
        .unwrap_or_else(|e| {
            tracing::error!("cannot start the background pool ({e}); using one thread");
            rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .expect("a one-thread pool")
        })
}

/// Start the child `cmd` will spawn at nice 19 and idle disk priority (`Normal`: unchanged):
/// backups' dump and archive tools, image builds that run beside the shop.
pub fn lower_child(cmd: &mut tokio::process::Command, p: Priority) {
    if p == Priority::Normal {
        return;
    }
    // SAFETY: setpriority and ioprio_set are async-signal-safe system calls on the child
    // itself; nothing of the parent's memory is touched.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setpriority(libc::PRIO_PROCESS, 0, NICE) != 0 {
                return Err(io::Error::last_os_error());
            }
            // IOPRIO_WHO_PROCESS = 1, class IDLE = 3 (shifted by IOPRIO_CLASS_SHIFT = 13).
            // Failure (a kernel without it) leaves the disk priority as it was.
            libc::syscall(libc::SYS_ioprio_set, 1, 0, 3 << 13);
            Ok(())
        });
    }
}

/// A thread's scheduling policy and nice value, from `/proc/<pid>/task/<tid>/stat`: fields
/// 19 (nice) and 41 (policy: 0 other, 3 batch, 5 idle). For `soko status` and the tests.
pub fn thread_sched(stat: &str) -> Option<(i32, u32)> {
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // `rest` starts at field 3.
    let nice = fields.get(19 - 3)?.parse().ok()?;
    let policy = fields.get(41 - 3)?.parse().ok()?;
    Some((nice, policy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_thread_runs_lowered_and_the_caller_does_not() {
        let pool = pool(1, Priority::Batch);
        let tid = pool.install(|| unsafe { libc::gettid() });
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
        assert_eq!(thread_sched(&stat), Some((NICE, libc::SCHED_BATCH as u32)));
        let me = unsafe { libc::gettid() };
        let stat = std::fs::read_to_string(format!("/proc/self/task/{me}/stat")).unwrap();
        assert_eq!(thread_sched(&stat).map(|s| s.1), Some(0));
    }
}

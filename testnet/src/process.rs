//! Child processes of a testnet: spawning each in its own process group with
//! its output appended to a log file and its pid in a pid file, liveness
//! checks, signals to whole groups, and log tails for error messages.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use crate::error::{Result, TestnetError};

/// Name (log and pid file) of a prover process in its directory.
pub const PROVER_PROCESS: &str = "prover";
/// Name (log and pid file) of the aggregator process in its directory.
pub const AGGREGATOR_PROCESS: &str = "aggregator";

/// Process names; each has `<name>.log` and `<name>.pid` in the node directory.
pub const SEQUENCER: &str = "sequencer";
pub const COMETBFT: &str = "cometbft";
/// Every process of a node, in start order.
pub const PROCESSES: [&str; 2] = [SEQUENCER, COMETBFT];

/// Runs `command` to completion and returns its stdout; a command that
/// cannot start is an I/O error on its program, one that exits non-zero is
/// [`TestnetError::CommandFailed`] with its command line and the last 4,000
/// bytes of its stderr.
pub fn run_checked(command: &mut Command) -> Result<Vec<u8>> {
    let program = PathBuf::from(command.get_program());
    let out = command
        .output()
        .map_err(|e| TestnetError::io(&program, e))?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    let line = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr = stderr.trim();
    let tail = stderr
        .char_indices()
        .map(|(i, _)| i)
        .find(|&i| stderr.len() - i <= 4000)
        .map_or(stderr, |i| &stderr[i..]);
    Err(TestnetError::CommandFailed {
        command: line,
        status: out.status.to_string(),
        stderr: tail.to_string(),
    })
}

pub fn log_path(node_dir: &Path, process: &str) -> PathBuf {
    node_dir.join(format!("{process}.log"))
}

pub fn pid_path(node_dir: &Path, process: &str) -> PathBuf {
    node_dir.join(format!("{process}.pid"))
}

/// The pid recorded for `process`, if its pid file exists and parses.
pub fn read_pid(node_dir: &Path, process: &str) -> Option<i32> {
    std::fs::read_to_string(pid_path(node_dir, process))
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub fn remove_pid(node_dir: &Path, process: &str) {
    let _ = std::fs::remove_file(pid_path(node_dir, process));
}

/// Whether `pid` names a running (not zombie) process.
pub fn is_alive(pid: i32) -> bool {
    let Some(p) = Pid::from_raw(pid) else {
        return false;
    };
    if rustix::process::test_kill_process(p).is_err() {
        return false;
    }
    // A zombie still accepts signal 0; its state in /proc/<pid>/stat is `Z`.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state != "Z" && state != "X"),
        Err(_) => true,
    }
}

/// Whether `pid` runs a program whose command line mentions `name` (guards
/// against signalling a recycled pid).
pub fn runs_program(pid: i32, name: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmdline| String::from_utf8_lossy(&cmdline).contains(name))
        .unwrap_or(false)
}

/// Sends `signal` to the process group led by `pid` (each child is a group leader).
pub fn signal_group(pid: i32, signal: Signal) -> Result<()> {
    let name = if signal == Signal::KILL {
        "SIGKILL"
    } else if signal == Signal::TERM {
        "SIGTERM"
    } else {
        "signal"
    };
    let Some(p) = Pid::from_raw(pid) else {
        return Ok(());
    };
    match rustix::process::kill_process_group(p, signal) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(TestnetError::Signal {
            pid,
            signal: name,
            source: e.into(),
        }),
    }
}

/// The last `lines` lines of a log file (or why it could not be read).
pub fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("({}: {e})", path.display()),
    }
}

/// A process this library started (or found through its pid file).
#[derive(Debug)]
pub struct Managed {
    pub node: usize,
    pub name: &'static str,
    pub pid: i32,
    pub log: PathBuf,
    /// Present when this process spawned it (then it is reaped here).
    child: Option<Child>,
}

impl Managed {
    /// A process started by someone else, known from its pid file.
    pub fn adopt(node: usize, name: &'static str, pid: i32, log: PathBuf) -> Managed {
        Managed {
            node,
            name,
            pid,
            log,
            child: None,
        }
    }

    /// Starts `program args` in a new process group, appending stdout and
    /// stderr to `<node_dir>/<name>.log` and writing `<node_dir>/<name>.pid`.
    pub fn spawn(
        node: usize,
        name: &'static str,
        node_dir: &Path,
        mut command: Command,
    ) -> Result<Managed> {
        let log = log_path(node_dir, name);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| TestnetError::io(&log, e))?;
        let err_file = file.try_clone().map_err(|e| TestnetError::io(&log, e))?;
        use std::os::unix::process::CommandExt;
        command
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err_file)
            .process_group(0);
        let program = command.get_program().to_owned();
        let child = command
            .spawn()
            .map_err(|e| TestnetError::io(PathBuf::from(&program), e))?;
        let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
        let pid_file = pid_path(node_dir, name);
        std::fs::write(&pid_file, format!("{pid}\n")).map_err(|e| TestnetError::io(pid_file, e))?;
        tracing::debug!(node, process = name, pid, log = %log.display(), "started");
        Ok(Managed {
            node,
            name,
            pid,
            log,
            child: Some(child),
        })
    }

    /// `None` while running; `Some(description)` once it has exited.
    pub fn exit_status(&mut self) -> Option<String> {
        match &mut self.child {
            Some(child) => match child.try_wait() {
                Ok(Some(status)) => Some(status.to_string()),
                Ok(None) => None,
                Err(e) => Some(format!("unknown ({e})")),
            },
            None => (!is_alive(self.pid)).then(|| "exited".to_string()),
        }
    }

    /// An error describing this process's death, with its log tail.
    pub fn died(&self, status: String, waiting_for: impl Into<String>) -> TestnetError {
        TestnetError::ProcessDied {
            node: self.node,
            process: self.name,
            status,
            waiting_for: waiting_for.into(),
            log: self.log.clone(),
            tail: tail(&self.log, 25),
        }
    }

    /// SIGKILLs the process group and reaps the child.
    pub fn kill(&mut self) -> Result<()> {
        if self.exit_status().is_some() {
            return Ok(());
        }
        signal_group(self.pid, Signal::KILL)?;
        self.wait_exit(Duration::from_secs(10));
        Ok(())
    }

    /// Sends SIGTERM to the group (no wait).
    pub fn terminate(&mut self) -> Result<()> {
        if self.exit_status().is_some() {
            return Ok(());
        }
        signal_group(self.pid, Signal::TERM)
    }

    /// Waits up to `timeout` for the process to exit; whether it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.exit_status().is_some() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Stops processes: SIGTERM to every group, wait up to `grace`, then SIGKILL
/// what is left. Errors are logged, not returned: stopping goes on.
pub fn stop_all(processes: &mut [Managed], grace: Duration) {
    for p in processes.iter_mut() {
        if let Err(e) = p.terminate() {
            tracing::warn!(node = p.node, process = p.name, "{e}");
        }
    }
    let deadline = Instant::now() + grace;
    for p in processes.iter_mut() {
        let left = deadline.saturating_duration_since(Instant::now());
        if !p.wait_exit(left) {
            tracing::warn!(
                node = p.node,
                process = p.name,
                pid = p.pid,
                "still running after {grace:?}: SIGKILL"
            );
            if let Err(e) = p.kill() {
                tracing::warn!(node = p.node, process = p.name, "{e}");
            }
        }
    }
}

/// Runs futures concurrently on the current task and collects their outputs
/// in order (one future per node or process: polls of many at once).
pub(crate) async fn join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.into_iter().map(Box::pin).map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for (slot, result) in pending.iter_mut().zip(results.iter_mut()) {
            if let Some(fut) = slot {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *result = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all_done = false,
                }
            }
        }
        if all_done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_checked_returns_stdout_or_names_the_failed_command() {
        let out = run_checked(Command::new("sh").args(["-c", "echo hi"])).expect("runs");
        assert_eq!(out, b"hi\n");
        match run_checked(Command::new("sh").args(["-c", "echo oops >&2; exit 3"])) {
            Err(TestnetError::CommandFailed {
                command,
                status,
                stderr,
            }) => {
                assert_eq!(command, "sh -c echo oops >&2; exit 3");
                assert!(status.contains('3'), "{status}");
                assert_eq!(stderr, "oops");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            run_checked(&mut Command::new("/nonexistent/program")),
            Err(TestnetError::Io { .. })
        ));
    }
}

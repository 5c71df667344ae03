//! The command's process: started in a process group of its own, so that stopping it also stops
//! what it started (a shell's children), and killed and reaped whenever its source lets go of it.
//!
//! The child also asks the kernel for SIGKILL when the thread that started it ends
//! (`PR_SET_PDEATHSIG`), so it does not outlive a daemon that is killed outright. That signal is
//! tied to the starting thread, which is the sensor's capture thread: the one that owns the
//! source, and drops it (killing the child) on its way out anyway. Only the direct child gets it:
//! a shell wrapper should `exec` its last program.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Pause between two looks at a child that is expected to exit.
const POLL: Duration = Duration::from_millis(10);

/// A running command.
pub struct Process {
    child: Child,
    /// Whether `child` was waited for: until then its pid, and so its group id, stays reserved.
    reaped: bool,
}

impl Process {
    /// Starts `argv` (program, then arguments) with standard input from `/dev/null` and its
    /// standard output and error piped.
    pub fn spawn(argv: &[String]) -> io::Result<(Process, ChildStdout, ChildStderr)> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
        let parent = std::process::id() as libc::pid_t;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: between fork and exec the closure only makes async-signal-safe calls (prctl,
        // getppid) and allocates nothing.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(io::Error::last_os_error());
                }
                // The daemon may have died before the request took effect.
                if libc::getppid() != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let mut child = command.spawn()?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            unreachable!("both outputs are piped");
        };
        let process = Process {
            child,
            reaped: false,
        };
        Ok((process, stdout, stderr))
    }

    /// Stops the process: waits up to `grace` for it to exit by itself, then kills its whole
    /// process group (whatever it started goes too), and reaps it. Says how it ended.
    pub fn stop(mut self, grace: Duration) -> String {
        let deadline = Instant::now() + grace;
        while !self.has_exited() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        self.kill_group();
        self.reaped = true;
        match self.child.wait() {
            Ok(status) => describe(status),
            Err(e) => format!("cannot be reaped: {e}"),
        }
    }

    /// True once the process has exited; it is left unreaped (a zombie), so its pid and group id
    /// stay reserved for [`kill_group`](Self::kill_group).
    fn has_exited(&self) -> bool {
        // SAFETY: an all-zero siginfo_t is valid; waitid only writes into it, and WNOWAIT leaves
        // the child to be reaped by `Child::wait`.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
            libc::waitid(libc::P_PID, self.child.id(), &mut info, flags) == 0 && info.si_pid() != 0
        }
    }

    /// SIGKILL to the process group; only before the child is reaped (see `reaped`).
    fn kill_group(&self) {
        let group = self.child.id() as libc::pid_t;
        // SAFETY: a plain system call; the group id is the child's pid (`process_group(0)`), still
        // reserved because the child is not reaped yet.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill_group();
            let _ = self.child.wait();
        }
    }
}

/// "exited with status 1", "killed by signal 9".
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    /// True while a process `pid` exists (a zombie counts).
    fn exists(pid: libc::pid_t) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(pid, 0) == 0 }
    }

    #[test]
    fn stopping_reports_the_exit_status_and_kills_what_it_started() {
        let (process, mut stdout, _) = Process::spawn(&argv(&[
            "sh",
            "-c",
            "sleep 1000 >/dev/null & echo $!; exit 3",
        ]))
        .unwrap();
        let mut text = String::new();
        stdout.read_to_string(&mut text).ok();
        let grandchild: libc::pid_t = text.trim().parse().unwrap();
        assert!(exists(grandchild));
        assert_eq!(process.stop(Duration::from_secs(5)), "exited with status 3");
        // Killed with the group; reaped by init (a zombie for a moment at most).
        let gone = (0..500).any(|_| {
            std::thread::sleep(POLL);
            !exists(grandchild)
                || std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
                    .is_ok_and(|s| s.contains(") Z "))
        });
        assert!(gone, "sleep {grandchild} outlived its group");
    }

    #[test]
    fn a_process_that_does_not_exit_is_killed() {
        let (process, _, _) = Process::spawn(&argv(&["sleep", "1000"])).unwrap();
        assert_eq!(process.stop(Duration::ZERO), "killed by signal 9");
        let missing = Process::spawn(&argv(&["/nonexistent/program"]));
        assert_eq!(
            missing.err().map(|e| e.kind()),
            Some(io::ErrorKind::NotFound)
        );
    }
}

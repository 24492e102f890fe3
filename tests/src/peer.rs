//! An external MQTT peer (mosquitto_sub, a Python script, ...) as a child process.
//!
//! Its stdout arrives as lines, read by a task as they come, so a test can wait for "the
//! subscription is acknowledged" before it publishes. Every wait is bounded by
//! [`PATIENCE`] and a failure prints what the peer said so far (stdout and stderr). The
//! child is killed (SIGKILL) when the [`Peer`] is dropped, so a failing test leaves no
//! process behind.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::PATIENCE;

/// A running peer process.
#[derive(Debug)]
pub struct Peer {
    /// The command line, for failure messages.
    command_line: String,
    /// Killed on drop (`kill_on_drop`).
    child: Child,
    /// Stdout lines as the reader task splits them; closed at end of output.
    lines: mpsc::UnboundedReceiver<String>,
    /// Every stdout line received so far, for the transcript and [`Finished::stdout`].
    stdout: Vec<String>,
    /// Everything the peer wrote to stderr so far.
    stderr: Arc<Mutex<String>>,
    /// The task filling `stderr`; done once the peer's stderr is closed.
    stderr_collector: Option<JoinHandle<()>>,
}

/// A peer that exited, with everything it printed.
#[derive(Debug)]
pub struct Finished {
    /// The command line that ran.
    pub command_line: String,
    /// How it exited.
    pub status: ExitStatus,
    /// Its stdout, line by line (without the line ends).
    pub stdout: Vec<String>,
    /// Its stderr.
    pub stderr: String,
}

impl Finished {
    /// Panics, with the transcript, unless the peer exited with status 0.
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "{} failed: {}",
            self.command_line,
            self.transcript()
        );
        self
    }

    /// What the peer printed, for failure messages.
    pub fn transcript(&self) -> String {
        transcript(self.status.to_string(), &self.stdout, &self.stderr)
    }
}

impl Peer {
    /// Starts `program` with `args`, stdin closed, stdout and stderr captured.
    ///
    /// Panics if the program cannot be started (it names `cargo xtask setup`, which
    /// installs every peer).
    pub fn spawn<I, S>(program: &str, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Self::spawn_with_input(program, args, None)
    }

    /// Like [`Peer::spawn`], with `input` written to the peer's stdin, which is then
    /// closed (e.g. `mosquitto_pub -l`, one message per line).
    pub fn spawn_with_input<I, S>(program: &str, args: I, input: Option<Vec<u8>>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(program);
        command.args(args);
        let command_line = format!("{:?}", command.as_std());
        command
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap_or_else(|err| {
            panic!("cannot start {command_line}: {err} (`cargo xtask setup` installs the peers)")
        });
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            tokio::spawn(async move {
                // A peer that exits early closes the pipe; what it read is what counts.
                let _ = stdin.write_all(&input).await;
            });
        }
        let (tx, lines) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if line.last() == Some(&b'\n') {
                            line.pop();
                        }
                        if tx
                            .send(String::from_utf8_lossy(&line).into_owned())
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_pipe = child.stderr.take().expect("stderr is piped");
        let stderr_collector = Some(tokio::spawn(collect(stderr_pipe, stderr.clone())));
        Self {
            command_line,
            child,
            lines,
            stdout: Vec::new(),
            stderr,
            stderr_collector,
        }
    }

    /// The next stdout line, or `None` at the end of the output. Panics if nothing
    /// arrives within [`PATIENCE`].
    pub async fn next_line(&mut self) -> Option<String> {
        match tokio::time::timeout(PATIENCE, self.lines.recv()).await {
            Ok(Some(line)) => {
                self.stdout.push(line.clone());
                Some(line)
            }
            Ok(None) => None,
            Err(_) => panic!(
                "{} printed nothing more within {PATIENCE:?}: {}",
                self.command_line,
                self.transcript()
            ),
        }
    }

    /// Reads stdout until a line satisfies `wanted` and returns that line. Panics, naming
    /// `what`, if the output ends or stalls first.
    pub async fn wait_for_line(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        loop {
            match self.next_line().await {
                Some(line) if wanted(&line) => return line,
                Some(_) => {}
                None => panic!(
                    "{} ended before {what}: {}",
                    self.command_line,
                    self.transcript()
                ),
            }
        }
    }

    /// Waits (at most [`PATIENCE`]) for the peer to exit and returns all it printed.
    pub async fn finish(mut self) -> Finished {
        let status = match tokio::time::timeout(PATIENCE, self.child.wait()).await {
            Ok(status) => status.expect("waiting for the peer"),
            Err(_) => panic!(
                "{} still running after {PATIENCE:?}: {}",
                self.command_line,
                self.transcript()
            ),
        };
        // The process is gone, so its end of the pipe is closed: the reader ends.
        while self.next_line().await.is_some() {}
        if let Some(collector) = self.stderr_collector.take() {
            // Bounded: a grandchild could keep the pipe open; the text so far will do.
            let _ = tokio::time::timeout(PATIENCE, collector).await;
        }
        Finished {
            command_line: self.command_line.clone(),
            status,
            stdout: std::mem::take(&mut self.stdout),
            stderr: self.stderr(),
        }
    }

    /// Kills the peer with SIGKILL (no DISCONNECT, the socket just closes) and waits
    /// for it to be gone.
    pub async fn kill(mut self) -> Finished {
        self.child.start_kill().expect("the peer can be killed");
        self.finish().await
    }

    /// Everything the peer printed so far, for failure messages.
    pub fn transcript(&self) -> String {
        transcript("running".into(), &self.stdout, &self.stderr())
    }

    fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Appends everything `pipe` yields to `into` (lossily decoded).
async fn collect(mut pipe: impl AsyncRead + Unpin, into: Arc<Mutex<String>>) {
    let mut chunk = vec![0; 4096];
    while let Ok(n @ 1..) = pipe.read(&mut chunk).await {
        if let Ok(mut text) = into.lock() {
            text.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    }
}

fn transcript(status: String, stdout: &[String], stderr: &str) -> String {
    let mut out = format!("\n--- status: {status}\n--- stdout:\n");
    for line in stdout {
        // A 256 KiB payload line would drown the message.
        let shown: String = line.chars().take(300).collect();
        let _ = writeln!(out, "{shown}");
    }
    let _ = write!(out, "--- stderr:\n{stderr}---");
    out
}

//! payhub as an operator runs it: the `payhub` binary, its command line for set-up, and `payhub serve` as a
//! process of its own that the run kills with SIGKILL and starts again on the same data and port.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// A port free now, for an instance that keeps it across restarts (Vipps' webhooks and payers' return links
/// name it).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The `payhub` binary with exactly `env` (and `PATH`).
fn command(bin: &Path, env: &[(String, String)]) -> Command {
    let mut command = Command::new(bin);
    command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Runs one command-line task to its end with `stdin` typed in; its standard output.
pub fn cli(bin: &Path, env: &[(String, String)], args: &[&str], stdin: &str) -> anyhow::Result<String> {
    let mut child = command(bin, env)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    child.stdin.take().context("stdin")?.write_all(stdin.as_bytes())?;
    let output = child.wait_with_output()?;
    anyhow::ensure!(output.status.success(), "payhub {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// One `payhub serve` instance: its settings, log file and (while it runs) its process.
pub struct Instance {
    bin: PathBuf,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

impl Instance {
    /// An instance on `port` with `env` (its database, data dir and settings); not started.
    pub fn new(bin: &Path, mut env: Vec<(String, String)>, port: u16, log: PathBuf) -> Instance {
        env.push(("PAYHUB_LISTEN".into(), format!("127.0.0.1:{port}")));
        Instance { bin: bin.to_owned(), env, log, child: None, base: format!("http://127.0.0.1:{port}") }
    }

    /// Starts `payhub serve` and waits until `/readyz` answers 200; how long that took.
    pub async fn start(&mut self, http: &reqwest::Client) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = command(&self.bin, &self.env)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} serve", self.bin.display()))?;
        self.child = Some(child);
        loop {
            if let Ok(answer) = http.get(format!("{}/readyz", self.base)).send().await {
                if answer.status().is_success() {
                    return Ok(started.elapsed());
                }
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                anyhow::bail!("payhub serve exited with {status}; see {}", self.log.display());
            }
            anyhow::ensure!(started.elapsed() < Duration::from_secs(120), "payhub did not get ready in 120 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: no shutdown, no flush, whatever the process was doing.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process is running (it was started and has not exited).
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

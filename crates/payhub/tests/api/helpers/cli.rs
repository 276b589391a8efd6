//! The `payhub` binary run as an operator runs it: a fresh environment, output and exit code captured.

use std::io::Write;
use std::process::{Command, Stdio};

use super::TestApp;

/// The `payhub` binary with an empty environment but `PATH`, pointed at `data_dir` and `database_url`.
pub fn payhub(data_dir: &std::path::Path, database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_payhub"));
    command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    command.env("PAYHUB_DATA_DIR", data_dir).env("PAYHUB_DATABASE_URL", database_url).env("RUST_LOG", "warn");
    command
}

/// The `payhub` binary on `app`'s data directory, database and master key (so it opens the sealed secrets),
/// with `args`.
pub fn payhub_of(app: &TestApp, args: &[&str]) -> Command {
    let mut command = payhub(app.data_dir.path(), &app.database_url);
    command.env("PAYHUB_MASTER_KEY", &app.master_key).env("PAYHUB_VIPPS_TIMEOUT_MS", "5000").args(args);
    command
}

/// Runs `command` with `stdin` typed in; (exit code, stdout, stderr).
pub fn run(mut command: Command, stdin: &str) -> (i32, String, String) {
    let mut child =
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("payhub starts");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("stdin written");
    let output = child.wait_with_output().expect("payhub ends");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// [`run`] with nothing typed in, off the runtime's threads: the simulator and payhub answer the binary from
/// them.
pub async fn run_beside(command: Command) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || run(command, "")).await.expect("the run finishes")
}

//! The `vipps-sim` binary starts, prints its address and serves the configured merchant.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn the_binary_listens_and_accepts_the_merchant_given_on_the_command_line() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vipps-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--merchant",
            "98765,cli-id,cli-secret,cli-key",
            "--clock-start",
            "2030-06-01T12:00:00Z",
            "--frozen-clock",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("vipps-sim listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let r = reqwest::Client::new()
        .post(format!("{base}/accesstoken/get"))
        .header("client_id", "cli-id")
        .header("client_secret", "cli-secret")
        .header("Ocp-Apim-Subscription-Key", "cli-key")
        .send()
        .await
        .unwrap();
    let status = r.status();
    let clock: serde_json::Value = reqwest::get(format!("{base}/_sim/clock")).await.unwrap().json().await.unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(status, 200);
    assert_eq!(clock["now"], "2030-06-01T12:00:00.000Z");
}

#[test]
fn a_malformed_merchant_argument_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_vipps-sim"))
        .args(["--listen", "127.0.0.1:0", "--merchant", "12,only-two"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("MSN,CLIENT_ID,CLIENT_SECRET,SUBSCRIPTION_KEY"));
}

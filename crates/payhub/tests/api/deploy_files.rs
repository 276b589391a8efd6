//! The deployment files say what the README says: the compose file runs two payhub instances on one PostgreSQL
//! behind one address, the image builds with the README's command, the systemd unit is hardened, the licence
//! files match the workspace's licence, and `payhub --help` names the data directory and every setting.

use std::path::PathBuf;

use serde_yaml::Value;

use crate::helpers::cli::{payhub, run};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn env_of<'a>(service: &'a Value, name: &str) -> &'a str {
    service["environment"][name].as_str().unwrap_or_else(|| panic!("{name} in {service:?}"))
}

#[test]
fn compose_runs_two_instances_on_one_postgresql_behind_one_address() {
    let compose: Value = serde_yaml::from_str(&read("deploy/compose.yaml")).expect("compose.yaml is YAML");
    let services = compose["services"].as_mapping().expect("services");
    let names: Vec<&str> = services.keys().filter_map(Value::as_str).collect();
    let database = &compose["services"]["postgres"];
    assert!(database["image"].as_str().unwrap().starts_with("postgres:"), "{names:?}");
    assert!(database["healthcheck"]["test"].as_sequence().is_some(), "PostgreSQL reports when it is ready");

    let instances: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| compose["services"][*n]["environment"]["PAYHUB_DATABASE_URL"].is_string())
        .collect();
    assert_eq!(instances, ["payhub-1", "payhub-2"], "two payhub instances");
    let (one, two) = (&compose["services"]["payhub-1"], &compose["services"]["payhub-2"]);
    let url = env_of(one, "PAYHUB_DATABASE_URL");
    assert!(url.starts_with("postgres://") && url.contains("@postgres:5432/"), "the compose PostgreSQL: {url}");
    for setting in ["PAYHUB_DATABASE_URL", "PAYHUB_MASTER_KEY", "PAYHUB_PUBLIC_URL"] {
        assert_eq!(env_of(one, setting), env_of(two, setting), "both instances share {setting}");
    }
    assert!(env_of(one, "PAYHUB_MASTER_KEY").contains(":?"), "no instance starts without the shared key");
    for instance in [one, two] {
        assert_eq!(instance["depends_on"]["postgres"]["condition"], "service_healthy");
        assert_eq!(instance["build"]["context"], "..");
        assert!(repo().join(instance["build"]["dockerfile"].as_str().unwrap()).exists());
        assert_eq!(env_of(instance, "PAYHUB_LISTEN"), "0.0.0.0:8080");
    }
    assert_ne!(one["volumes"], two["volumes"], "each instance has its own data volume");

    // One address: the proxy publishes a port and balances over both instances, checking /readyz.
    let proxies: Vec<&str> = names.iter().copied().filter(|n| compose["services"][*n]["ports"].is_sequence()).collect();
    assert_eq!(proxies.len(), 1, "one service is reachable from outside: {proxies:?}");
    let proxy = &compose["services"][proxies[0]];
    let mount = proxy["volumes"][0].as_str().unwrap();
    let caddyfile = read(&format!("deploy/{}", mount.split(':').next().unwrap().trim_start_matches("./")));
    assert!(caddyfile.contains("payhub-1:8080") && caddyfile.contains("payhub-2:8080"), "{caddyfile}");
    assert!(caddyfile.contains("health_uri /readyz"), "{caddyfile}");
}

#[test]
fn the_image_builds_with_the_readmes_command_runs_unprivileged_and_checks_readyz() {
    let dockerfile = read("Dockerfile");
    let readme = read("README.md");
    assert!(dockerfile.lines().filter(|l| l.starts_with("FROM ")).count() >= 2, "multi-stage");
    let build = dockerfile
        .lines()
        .filter(|l| l.starts_with("RUN "))
        .find_map(|l| l.find("cargo build").map(|i| l[i..].trim()))
        .expect("a RUN cargo build line");
    assert!(build.contains("--release"), "{build}");
    assert!(readme.lines().any(|l| l.trim().starts_with(build)), "the README builds with `{build}` too");
    assert!(readme.contains("docker build -t payhub ."), "the README names the image's build");

    let runtime = &dockerfile[dockerfile.rfind("\nFROM ").unwrap()..];
    let user = runtime.lines().find_map(|l| l.strip_prefix("USER ")).expect("a USER in the runtime stage");
    assert!(!["root", "0"].contains(&user.trim()), "{user}");
    assert!(runtime.contains("HEALTHCHECK") && runtime.contains("/readyz"), "health check on /readyz");
    let data_dir = runtime
        .split_whitespace()
        .find_map(|w| w.strip_prefix("PAYHUB_DATA_DIR="))
        .expect("the image sets PAYHUB_DATA_DIR");
    assert!(runtime.contains(&format!("VOLUME [\"{data_dir}\"]")), "the data directory is a volume");
    let ignored = read(".dockerignore");
    for path in ["target/", ".git/", "payhub-data/", "deploy/.env"] {
        assert!(ignored.lines().any(|l| l == path), "{path} stays out of the build context");
    }
}

#[test]
fn every_build_in_the_readme_uses_the_release_profile() {
    let readme = read("README.md");
    let builds: Vec<&str> = readme.lines().filter(|l| l.contains("cargo run ") || l.contains("cargo build ")).collect();
    assert!(builds.len() > 3, "{builds:?}");
    for line in builds {
        assert!(line.contains("--release"), "not the release profile: {line}");
    }
    assert!(readme.contains("cargo install --locked --path crates/payhub"), "the README installs the binary");
    assert!(readme.contains("CREATE DATABASE") || readme.contains("createdb"), "creates the PostgreSQL database");
}

#[test]
fn the_systemd_unit_applies_the_hardening_systemd_offers() {
    let unit = read("deploy/payhub.service");
    for option in [
        "ExecStart=/usr/local/bin/payhub serve",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "ProtectKernelTunables=yes",
        "ProtectControlGroups=yes",
        "RestrictAddressFamilies=",
        "SystemCallFilter=@system-service",
        "CapabilityBoundingSet=",
        "StateDirectory=payhub",
        "Environment=PAYHUB_DATA_DIR=/var/lib/payhub",
    ] {
        assert!(unit.lines().any(|l| l.starts_with(option)), "{option}");
    }
}

#[test]
fn the_licence_files_match_the_workspace_licence() {
    let manifest = read("Cargo.toml");
    assert!(manifest.contains("license = \"MIT OR Apache-2.0\""));
    let mit = read("LICENSE-MIT");
    assert!(mit.starts_with("MIT License") && mit.contains("payhub contributors"), "LICENSE-MIT");
    let apache = read("LICENSE-APACHE");
    assert!(apache.contains("Apache License") && apache.contains("Version 2.0, January 2004"), "LICENSE-APACHE");
    assert!(apache.contains("payhub contributors"));
}

#[test]
fn help_names_the_data_directory_and_every_setting() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = payhub(dir.path(), "sqlite://unused.db");
    command.arg("--help");
    let (code, out, _) = run(command, "");
    assert_eq!(code, 0);
    assert!(out.contains("--data-dir") && out.contains("./payhub-data"), "{out}");
    let config = read("crates/payhub/src/config.rs");
    let settings: std::collections::BTreeSet<&str> = config
        .split('"')
        .filter(|w| w.starts_with("PAYHUB_") && w.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        .collect();
    assert!(settings.len() > 15, "{settings:?}");
    for setting in settings {
        assert!(out.contains(setting), "--help names {setting}");
    }
}

//! Typed configuration: built-in defaults, then an optional TOML file, then `PAYHUB_*` environment variables.
//!
//! Every setting has one name in each layer (`listen` in the file is `PAYHUB_LISTEN` in the environment).
//! A bad value stops start-up with a [`ConfigError`] whose message names the setting.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::Url;

use crate::domain::webhook_target::WebhookTargets;
use crate::secrets::MasterKey;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The validated configuration payhub runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the HTTP server binds (`PAYHUB_LISTEN`, default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// Folder for the default SQLite file and the generated master key (`PAYHUB_DATA_DIR`, default `./payhub-data`).
    pub data_dir: PathBuf,
    /// Database URL, `sqlite:` or `postgres:` (`PAYHUB_DATABASE_URL`, default an SQLite file in the data dir).
    pub database_url: String,
    /// The URL payers and Vipps reach this server at (`PAYHUB_PUBLIC_URL`, default `http://<listen>`).
    pub public_url: Url,
    /// Master key given in the environment or file (`PAYHUB_MASTER_KEY`, 32 bytes as hex or base64).
    /// When absent, a key file in the data dir is used, created on first run.
    pub master_key: Option<MasterKey>,
    /// Log format (`PAYHUB_LOG_FORMAT` = `human` | `json`).
    pub log_format: LogFormat,
    /// Largest request body accepted, in bytes (`PAYHUB_MAX_BODY_BYTES`, default 64 KiB).
    pub max_body_bytes: usize,
    /// Seconds between polls of Vipps payments still pending (`PAYHUB_POLL_SECONDS`, default 30).
    pub poll_seconds: u64,
    /// Background job workers `payhub serve` runs in-process (`PAYHUB_WORKERS`, default 2; 0 for none).
    pub workers: usize,
    /// Time limit of one attempt of a Vipps call, in milliseconds (`PAYHUB_VIPPS_TIMEOUT_MS`, default 15000);
    /// failed attempts are retried with the same Idempotency-Key.
    pub vipps_timeout_ms: u64,
    /// Time limit of one HTTP request to payhub, in milliseconds (`PAYHUB_REQUEST_TIMEOUT_MS`, default 30000);
    /// past it the caller gets 503. Work claimed under an IdempotencyKey goes on, and a repeat with the key
    /// gets its answer.
    pub request_timeout_ms: u64,
    /// Upcoming installments each recurring payment keeps generated (`PAYHUB_RECURRING_HORIZON`, default 1:
    /// the next one).
    pub recurring_horizon: u32,
    /// Days before its due date an installment's Vipps charge is created (`PAYHUB_CHARGE_LEAD_DAYS`, default 3,
    /// at least 1: Vipps' rule).
    pub charge_lead_days: u32,
    /// Seconds between runs of the recurring beats, GenerateInstallments and CollectRecurring
    /// (`PAYHUB_RECURRING_BEAT_SECONDS`, default 3600; the sandbox uses its poll interval).
    pub recurring_beat_seconds: u64,
    /// Hours between runs of the ledger import beat `reconcile.import` (`PAYHUB_RECONCILE_BEAT_HOURS`, default 24).
    pub reconcile_beat_hours: u32,
    /// Days the trail (Messages and Inbound Reports) is kept at least (`PAYHUB_RETENTION_TRAIL_DAYS`, default
    /// 1827 and never less: what documents money is kept five years, as Norwegian bookkeeping law asks). Past
    /// it, trail rows no payment or intent points at are deleted.
    pub retention_trail_days: u32,
    /// Days after which raw Message bodies, which hold payers' personal data, are redacted
    /// (`PAYHUB_REDACT_BODIES_AFTER_DAYS`, default 0: never); the Inbound Reports keep the facts.
    pub redact_bodies_after_days: u32,
    /// Days operational rows are kept (`PAYHUB_RETENTION_OPERATIONAL_DAYS`, default 14): answered idempotency
    /// keys, finished webhook deliveries, raw webhook Messages that became no report, ended sessions and links.
    pub retention_operational_days: u32,
    /// Giving Page submissions one client address may make per minute (`PAYHUB_GIVE_SUBMISSIONS_PER_MINUTE`,
    /// default 20); past it the page answers 429.
    pub give_submissions_per_minute: u32,
    /// Whether outbound webhooks may go to hosts that are not public: loopback, private and link-local
    /// networks (cloud metadata at 169.254.169.254), `localhost` and other local names
    /// (`PAYHUB_ALLOW_PRIVATE_WEBHOOK_TARGETS`, default false). Off, such a `WebhookURL` or endpoint URL is
    /// refused at input, and a delivery whose host resolves to such an address fails without being sent. The
    /// sandbox turns it on: its receivers are local.
    pub allow_private_webhook_targets: bool,
    /// A vipps-sim whose virtual clock `payhub serve` follows instead of the wall clock (`PAYHUB_CLOCK_URL`,
    /// default none). For fault runs and demos against a simulator in another process, where moving the
    /// simulator's clock must move payhub's (the sandbox's in-process simulator does this without it); never
    /// set it against the real Vipps.
    pub clock_url: Option<Url>,
}

impl Config {
    /// The rule for outbound webhook targets that `allow_private_webhook_targets` sets.
    pub fn webhook_targets(&self) -> WebhookTargets {
        WebhookTargets::allowing_private(self.allow_private_webhook_targets)
    }
}

/// A configuration value that cannot be used; the message names the setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {setting}: {message}")]
pub struct ConfigError {
    /// The setting's environment name, e.g. `PAYHUB_LISTEN`.
    pub setting: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    fn new(setting: &str, message: impl Into<String>) -> Self {
        Self { setting: setting.to_owned(), message: message.into() }
    }
}

/// The TOML file's shape: every field optional, unknown keys refused so a typo is not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLayer {
    listen: Option<String>,
    data_dir: Option<String>,
    database_url: Option<String>,
    public_url: Option<String>,
    master_key: Option<String>,
    log_format: Option<String>,
    max_body_bytes: Option<usize>,
    poll_seconds: Option<u64>,
    workers: Option<usize>,
    vipps_timeout_ms: Option<u64>,
    request_timeout_ms: Option<u64>,
    recurring_horizon: Option<u32>,
    charge_lead_days: Option<u32>,
    recurring_beat_seconds: Option<u32>,
    reconcile_beat_hours: Option<u32>,
    retention_trail_days: Option<u32>,
    redact_bodies_after_days: Option<u32>,
    retention_operational_days: Option<u32>,
    give_submissions_per_minute: Option<u32>,
    allow_private_webhook_targets: Option<bool>,
    clock_url: Option<String>,
}

impl Config {
    /// Loads the configuration from the process environment and, if given (or named by `PAYHUB_CONFIG`), a
    /// TOML file.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().filter(|(k, _)| k.starts_with("PAYHUB_")).collect();
        Self::from_sources(file, &env)
    }

    /// Builds the configuration from an optional file and an explicit environment map (for tests).
    pub fn from_sources(file: Option<&Path>, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let file_path = file.map(Path::to_path_buf).or_else(|| env.get("PAYHUB_CONFIG").map(PathBuf::from));
        let layer = match &file_path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::new("PAYHUB_CONFIG", format!("cannot read {}: {e}", path.display())))?;
                toml::from_str::<FileLayer>(&text)
                    .map_err(|e| ConfigError::new("PAYHUB_CONFIG", format!("{}: {}", path.display(), e.message())))?
            }
            None => FileLayer::default(),
        };
        // Environment beats file beats default.
        let pick = |name: &str, from_file: Option<String>| env.get(name).cloned().or(from_file);

        let listen_text = pick("PAYHUB_LISTEN", layer.listen).unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            ConfigError::new("PAYHUB_LISTEN", format!("`{listen_text}` is not an address like 127.0.0.1:8080"))
        })?;

        let data_dir = PathBuf::from(pick("PAYHUB_DATA_DIR", layer.data_dir).unwrap_or_else(|| "./payhub-data".into()));
        if data_dir.as_os_str().is_empty() {
            return Err(ConfigError::new("PAYHUB_DATA_DIR", "must not be empty"));
        }

        let database_url = pick("PAYHUB_DATABASE_URL", layer.database_url)
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", data_dir.join("payhub.db").display()));
        crate::store::Backend::from_url(&database_url)
            .map_err(|e| ConfigError::new("PAYHUB_DATABASE_URL", e.to_string()))?;

        let public_text = pick("PAYHUB_PUBLIC_URL", layer.public_url).unwrap_or_else(|| format!("http://{listen}"));
        let public_url = Url::parse(&public_text)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                ConfigError::new("PAYHUB_PUBLIC_URL", format!("`{public_text}` is not an absolute http(s) URL"))
            })?;

        let master_key = match pick("PAYHUB_MASTER_KEY", layer.master_key) {
            Some(text) => Some(MasterKey::parse(&text).map_err(|e| ConfigError::new("PAYHUB_MASTER_KEY", e))?),
            None => None,
        };

        let log_format = match pick("PAYHUB_LOG_FORMAT", layer.log_format).as_deref() {
            None | Some("human") => LogFormat::Human,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::new("PAYHUB_LOG_FORMAT", format!("`{other}` is not `human` or `json`")))
            }
        };

        let max_body_bytes = match env.get("PAYHUB_MAX_BODY_BYTES") {
            Some(text) => text
                .parse::<usize>()
                .map_err(|_| ConfigError::new("PAYHUB_MAX_BODY_BYTES", format!("`{text}` is not a number of bytes")))?,
            None => layer.max_body_bytes.unwrap_or(64 * 1024),
        };
        if !(1024..=16 * 1024 * 1024).contains(&max_body_bytes) {
            return Err(ConfigError::new("PAYHUB_MAX_BODY_BYTES", "must be between 1024 and 16777216"));
        }

        let poll_seconds = match env.get("PAYHUB_POLL_SECONDS") {
            Some(text) => text.parse::<u64>().ok().filter(|s| (1..=86_400).contains(s)).ok_or_else(|| {
                ConfigError::new("PAYHUB_POLL_SECONDS", format!("`{text}` is not a number of seconds from 1 to 86400"))
            })?,
            None => layer.poll_seconds.unwrap_or(30),
        };
        let workers =
            match env.get("PAYHUB_WORKERS") {
                Some(text) => text.parse::<usize>().ok().filter(|n| *n <= 64).ok_or_else(|| {
                    ConfigError::new("PAYHUB_WORKERS", format!("`{text}` is not a number from 0 to 64"))
                })?,
                None => layer.workers.unwrap_or(2),
            };

        let vipps_timeout_ms = match env.get("PAYHUB_VIPPS_TIMEOUT_MS") {
            Some(text) => text.parse::<u64>().ok().filter(|ms| (100..=120_000).contains(ms)).ok_or_else(|| {
                ConfigError::new(
                    "PAYHUB_VIPPS_TIMEOUT_MS",
                    format!("`{text}` is not a number of milliseconds from 100 to 120000"),
                )
            })?,
            None => layer.vipps_timeout_ms.unwrap_or(15_000),
        };
        let request_timeout_ms = match env.get("PAYHUB_REQUEST_TIMEOUT_MS") {
            Some(text) => text.parse::<u64>().ok().filter(|ms| (1_000..=600_000).contains(ms)).ok_or_else(|| {
                ConfigError::new(
                    "PAYHUB_REQUEST_TIMEOUT_MS",
                    format!("`{text}` is not a number of milliseconds from 1000 to 600000"),
                )
            })?,
            None => layer.request_timeout_ms.unwrap_or(30_000),
        };
        if !(1_000..=600_000).contains(&request_timeout_ms) {
            return Err(ConfigError::new("PAYHUB_REQUEST_TIMEOUT_MS", "must be from 1000 to 600000"));
        }

        let number = |name: &str, from_file: Option<u32>, default: u32, range: std::ops::RangeInclusive<u32>| match env
            .get(name)
        {
            Some(text) => text.parse::<u32>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
                ConfigError::new(name, format!("`{text}` is not a number from {} to {}", range.start(), range.end()))
            }),
            None => {
                let value = from_file.unwrap_or(default);
                if range.contains(&value) {
                    Ok(value)
                } else {
                    Err(ConfigError::new(name, format!("must be from {} to {}", range.start(), range.end())))
                }
            }
        };
        let recurring_horizon = number("PAYHUB_RECURRING_HORIZON", layer.recurring_horizon, 1, 1..=24)?;
        let charge_lead_days = number("PAYHUB_CHARGE_LEAD_DAYS", layer.charge_lead_days, 3, 1..=30)?;
        let recurring_beat_seconds =
            u64::from(number("PAYHUB_RECURRING_BEAT_SECONDS", layer.recurring_beat_seconds, 3600, 1..=86_400)?);
        let reconcile_beat_hours =
            number("PAYHUB_RECONCILE_BEAT_HOURS", layer.reconcile_beat_hours, 24, 1..=1_000_000)?;
        let retention_trail_days =
            number("PAYHUB_RETENTION_TRAIL_DAYS", layer.retention_trail_days, 1827, 1827..=36_500)?;
        let redact_bodies_after_days =
            number("PAYHUB_REDACT_BODIES_AFTER_DAYS", layer.redact_bodies_after_days, 0, 0..=36_500)?;
        let retention_operational_days =
            number("PAYHUB_RETENTION_OPERATIONAL_DAYS", layer.retention_operational_days, 14, 1..=3650)?;
        let give_submissions_per_minute =
            number("PAYHUB_GIVE_SUBMISSIONS_PER_MINUTE", layer.give_submissions_per_minute, 20, 1..=1_000_000)?;

        let allow_private_webhook_targets = match env.get("PAYHUB_ALLOW_PRIVATE_WEBHOOK_TARGETS") {
            Some(text) => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => {
                    return Err(ConfigError::new(
                        "PAYHUB_ALLOW_PRIVATE_WEBHOOK_TARGETS",
                        format!("`{text}` is not `true` or `false`"),
                    ))
                }
            },
            None => layer.allow_private_webhook_targets.unwrap_or(false),
        };

        let clock_url = match pick("PAYHUB_CLOCK_URL", layer.clock_url) {
            Some(text) => Some(
                Url::parse(&text)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| ConfigError::new("PAYHUB_CLOCK_URL", format!("`{text}` is not an http(s) URL")))?,
            ),
            None => None,
        };

        Ok(Config {
            listen,
            data_dir,
            database_url,
            public_url,
            master_key,
            log_format,
            max_body_bytes,
            poll_seconds,
            workers,
            vipps_timeout_ms,
            request_timeout_ms,
            recurring_horizon,
            charge_lead_days,
            recurring_beat_seconds,
            reconcile_beat_hours,
            retention_trail_days,
            redact_bodies_after_days,
            retention_operational_days,
            allow_private_webhook_targets,
            clock_url,
            give_submissions_per_minute,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_listen_on_loopback_with_sqlite_in_the_data_dir() {
        let config = Config::from_sources(None, &env(&[])).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert!(config.database_url.starts_with("sqlite://./payhub-data/payhub.db"));
        assert_eq!(config.public_url.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(config.log_format, LogFormat::Human);
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payhub.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\npublic_url = \"https://pay.example.org\"\n").unwrap();
        let config = Config::from_sources(Some(&path), &env(&[("PAYHUB_LISTEN", "127.0.0.1:9001")])).unwrap();
        assert_eq!(config.listen.port(), 9001);
        assert_eq!(config.public_url.as_str(), "https://pay.example.org/");
    }

    #[test]
    fn a_bad_value_names_its_setting() {
        let err = Config::from_sources(None, &env(&[("PAYHUB_LISTEN", "nowhere")])).unwrap_err();
        assert_eq!(err.setting, "PAYHUB_LISTEN");
        let err = Config::from_sources(None, &env(&[("PAYHUB_DATABASE_URL", "mysql://x")])).unwrap_err();
        assert_eq!(err.setting, "PAYHUB_DATABASE_URL");
        let err = Config::from_sources(None, &env(&[("PAYHUB_MASTER_KEY", "short")])).unwrap_err();
        assert_eq!(err.setting, "PAYHUB_MASTER_KEY");
        let err = Config::from_sources(None, &env(&[("PAYHUB_PUBLIC_URL", "/relative")])).unwrap_err();
        assert_eq!(err.setting, "PAYHUB_PUBLIC_URL");
        let err = Config::from_sources(None, &env(&[("PAYHUB_REQUEST_TIMEOUT_MS", "10")])).unwrap_err();
        assert_eq!(err.setting, "PAYHUB_REQUEST_TIMEOUT_MS");
    }

    #[test]
    fn the_request_timeout_is_thirty_seconds_unless_set() {
        assert_eq!(Config::from_sources(None, &env(&[])).unwrap().request_timeout_ms, 30_000);
        let config = Config::from_sources(None, &env(&[("PAYHUB_REQUEST_TIMEOUT_MS", "2000")])).unwrap();
        assert_eq!(config.request_timeout_ms, 2_000);
    }

    #[test]
    fn private_webhook_targets_are_refused_unless_allowed() {
        let config = Config::from_sources(None, &env(&[])).unwrap();
        assert!(!config.allow_private_webhook_targets);
        assert_eq!(config.webhook_targets(), WebhookTargets::PublicOnly);
        let config = Config::from_sources(None, &env(&[("PAYHUB_ALLOW_PRIVATE_WEBHOOK_TARGETS", "true")])).unwrap();
        assert_eq!(config.webhook_targets(), WebhookTargets::AnyHost);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payhub.toml");
        std::fs::write(&path, "allow_private_webhook_targets = true\n").unwrap();
        assert!(Config::from_sources(Some(&path), &env(&[])).unwrap().allow_private_webhook_targets);
        let overridden = env(&[("PAYHUB_ALLOW_PRIVATE_WEBHOOK_TARGETS", "false")]);
        assert!(!Config::from_sources(Some(&path), &overridden).unwrap().allow_private_webhook_targets);
        let err = Config::from_sources(None, &env(&[("PAYHUB_ALLOW_PRIVATE_WEBHOOK_TARGETS", "maybe")])).unwrap_err();
        assert_eq!(err.setting, "PAYHUB_ALLOW_PRIVATE_WEBHOOK_TARGETS");
    }

    #[test]
    fn an_unknown_key_in_the_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payhub.toml");
        std::fs::write(&path, "lissten = \"127.0.0.1:9000\"\n").unwrap();
        let err = Config::from_sources(Some(&path), &env(&[])).unwrap_err();
        assert_eq!(err.setting, "PAYHUB_CONFIG");
        assert!(err.message.contains("lissten"), "{}", err.message);
    }
}

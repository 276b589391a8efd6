//! axe-core, the accessibility engine, fetched from the npm registry by `npm pack` into the build's temp
//! folder once (never committed), injected into a page and run there. A test fails on serious or critical
//! violations only; without the registry the check says it was skipped.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use super::webdriver::Browser;

/// axe-core's version, pinned so a run is repeatable.
const VERSION: &str = "4.10.3";

fn fetch() -> Option<String> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("axe-core-{VERSION}"));
    let script = dir.join("package").join("axe.min.js");
    if let Ok(text) = std::fs::read_to_string(&script) {
        return Some(text);
    }
    std::fs::create_dir_all(&dir).ok()?;
    let packed = Command::new("npm")
        .args(["pack", &format!("axe-core@{VERSION}"), "--silent", "--pack-destination"])
        .arg(&dir)
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let name = String::from_utf8_lossy(&packed.stdout).trim().lines().last()?.to_owned();
    let unpacked = Command::new("tar").arg("-xzf").arg(dir.join(name)).arg("-C").arg(&dir).status().ok()?;
    unpacked.success().then(|| std::fs::read_to_string(&script).ok()).flatten()
}

fn source() -> Option<&'static str> {
    static SOURCE: OnceLock<Option<String>> = OnceLock::new();
    SOURCE
        .get_or_init(|| {
            let found = fetch();
            if found.is_none() {
                eprintln!("skipped: the accessibility check (axe-core could not be fetched from the npm registry)");
            }
            found
        })
        .as_deref()
}

/// Runs axe-core on the page shown and fails on serious or critical violations, naming each with its nodes.
/// Returns how many rules passed (0 when axe-core is not available and the check was skipped).
pub async fn check(browser: &Browser, what: &str) -> usize {
    let Some(axe) = source() else { return 0 };
    browser.script(&format!("{axe}\n;return typeof axe;")).await;
    let result = browser
        .script_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})\
               .then(r => done(JSON.stringify({passes: r.passes.length, violations: r.violations})))\
               .catch(e => done(JSON.stringify({error: String(e)})));",
        )
        .await;
    let result: Value = serde_json::from_str(result.as_str().unwrap_or("{}")).unwrap_or(Value::Null);
    assert!(result.get("error").is_none(), "axe-core failed on {what}: {result}");
    let serious: Vec<String> = result["violations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .map(|v| {
            let nodes: Vec<String> = v["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| n["html"].as_str().unwrap_or_default().to_owned())
                .collect();
            format!("{} ({}): {} {:?}", v["id"], v["impact"], v["help"], nodes)
        })
        .collect();
    assert!(serious.is_empty(), "accessibility violations on {what}:\n{}", serious.join("\n"));
    eprintln!("axe-core on {what}: {} rules passed, no serious or critical violations", result["passes"]);
    result["passes"].as_u64().unwrap_or(0) as usize
}

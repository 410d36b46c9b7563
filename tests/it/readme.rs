//! README.md's command blocks, run as written, so the README cannot drift from the program.
//!
//! Every ```sh block under "Trying it by hand" runs, in order, in one bash session against a
//! fresh demo deployment; every block under "A deployment of your own" runs in a second session
//! against a deployment the blocks themselves create with `admin init` and `serve`. What the
//! test does instead of a line, and only that:
//! - the line starting the demo (`erhai-demo -- --keep-running`) and the one exporting its
//!   data (`erhai-demo -- --export-data`) are done in-process with the same library calls the
//!   `erhai-demo` binary makes, on a smaller generated dataset (a test must not run cargo);
//! - the line defining the `erhai` shell function points it at the binary under test;
//! - `/tmp/erhai-demo`, `/srv/erhai` and port 7443 become a temporary directory and a free port;
//! - after a line that starts a process in the background (`… &`), the session waits until the
//!   server accepts connections, as a person would before typing the next line.
//!
//! A line whose comment says `refused` must fail; every other line must succeed.

use std::path::Path;
use std::process::Command;

use erhai_devkit::demo::{self, Platform};
use erhai_devkit::demo_data::Sizes;

use crate::common::platform_with_users;

const README: &str = include_str!("../../README.md");

/// One command of the README: its first line's number, its text (continuations joined).
#[derive(Debug)]
struct Line {
    number: usize,
    text: String,
}

/// The commands of every ```sh block under the `##` section titled `section` (its `###`
/// subsections included), in order.
fn commands(section: &str) -> Vec<Line> {
    let mut out = Vec::new();
    let (mut inside_section, mut inside_block) = (false, false);
    let mut pending: Option<Line> = None;
    for (i, raw) in README.lines().enumerate() {
        if !inside_block && raw.starts_with("## ") {
            inside_section = raw.trim_start_matches("## ").trim() == section;
            continue;
        }
        if raw.starts_with("```") {
            inside_block = !inside_block && raw.trim() == "```sh";
            continue;
        }
        if !(inside_section && inside_block) {
            continue;
        }
        let (number, text) = match pending.take() {
            Some(p) => (p.number, format!("{} {}", p.text, raw.trim())),
            None => (i + 1, raw.trim().to_string()),
        };
        if let Some(head) = text.strip_suffix('\\') {
            pending = Some(Line {
                number,
                text: head.trim_end().to_string(),
            });
        } else if !text.is_empty() && !text.starts_with('#') {
            out.push(Line { number, text });
        }
    }
    assert!(
        !out.is_empty(),
        "README.md has no sh blocks under `## {section}`"
    );
    out
}

/// A bash script running `lines` one by one, stopping at the first that does not behave.
fn script(lines: &[Line], replace: &[(&str, String)], port: Option<u16>) -> String {
    let mut s = String::from(
        "set -u\nerhai() { \"$ERHAI_BIN\" \"$@\"; }\n\
         fail() { echo \"README.md:$1: $2\" >&2; exit 1; }\n",
    );
    for l in lines {
        if l.text.contains("erhai-demo --") || l.text.starts_with("erhai()") {
            continue;
        }
        let mut text = l.text.clone();
        for (from, to) in replace {
            text = text.replace(from, to);
        }
        let refused = l
            .text
            .split_once(" # ")
            .is_some_and(|(_, c)| c.contains("refused"));
        s.push_str(&format!("echo '+ README.md:{}' >&2\n{text}\n", l.number));
        if refused {
            s.push_str(&format!(
                "[ $? -ne 0 ] || fail {} 'expected a refusal, the command succeeded'\n",
                l.number
            ));
        } else {
            s.push_str(&format!(
                "rc=$?; [ $rc -eq 0 ] || fail {} \"exited $rc\"\n",
                l.number
            ));
        }
        if let Some(port) = port.filter(|_| text.ends_with('&')) {
            s.push_str(&format!(
                "for _ in $(seq 1 600); do (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && break; sleep 0.1; done\n"
            ));
        }
    }
    s
}

/// Runs `script` in bash in `dir` (its own process group, killed afterwards with whatever it
/// left in the background); panics with the session's output when it fails.
async fn run(script: String, dir: &Path) {
    let log = dir.join("session.log");
    let dir = dir.to_path_buf();
    let status = tokio::task::spawn_blocking(move || {
        use std::os::unix::process::CommandExt;
        let out = std::fs::File::create(&log).expect("log");
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(&dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &dir)
            .env("ERHAI_BIN", env!("CARGO_BIN_EXE_erhai"))
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("bash");
        let status = child.wait().expect("wait");
        let _ = Command::new("kill")
            .arg("--")
            .arg(format!("-{}", child.id()))
            .stderr(std::process::Stdio::null())
            .status();
        (status, std::fs::read_to_string(&log).unwrap_or_default())
    })
    .await
    .expect("session");
    let (status, text) = status;
    assert!(status.success(), "README session failed:\n{text}");
    // `--nocapture` shows what each line printed.
    println!("{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walkthrough_runs_as_written() {
    let p: Platform = platform_with_users(|_| {}).await;
    demo::load_demo_data(&p, 7, Sizes::with_stays(6_000))
        .await
        .expect("data");
    demo::authorize_demo_scenario(&p).await.expect("scenario");
    let lines = commands("Trying it by hand");
    let dir = p.dir.display().to_string();
    let script = script(&lines, &[("/tmp/erhai-demo", dir)], None);
    let work = tempfile::tempdir().expect("tmp");
    // `docs/application.toml` is named relative to the repository, as the README is read there.
    std::fs::create_dir_all(work.path().join("docs")).expect("docs");
    std::fs::write(work.path().join("docs/application.toml"), demo::APPLICATION)
        .expect("application");
    run(script, work.path()).await;
    p.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_of_your_own_runs_as_written() {
    erhai::install_crypto_provider();
    let work = tempfile::tempdir().expect("tmp");
    let lines = commands("A deployment of your own");
    let export = lines
        .iter()
        .find(|l| l.text.contains("erhai-demo -- --export-data"))
        .expect("the README exports the demo data");
    let target = export
        .text
        .split_whitespace()
        .skip_while(|w| *w != "--export-data")
        .nth(1)
        .expect("a directory");
    demo::export_data(&work.path().join(target), 7, Sizes::with_stays(6_000)).expect("export");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let srv = work.path().join("srv").display().to_string();
    let script = script(
        &lines,
        &[("/srv/erhai", srv), ("7443", port.to_string())],
        Some(port),
    );
    run(script, work.path()).await;
}

#[test]
fn the_readme_blocks_are_found() {
    // The sections the tests above run must exist and hold the commands they claim to check.
    let hand = commands("Trying it by hand");
    for needle in [
        "review show",
        "release verify",
        "tenant restore",
        "job promote",
    ] {
        assert!(
            hand.iter().any(|l| l.text.contains(needle)),
            "the walkthrough lost `{needle}`"
        );
    }
    let own = commands("A deployment of your own");
    assert!(own.iter().any(|l| l.text.contains("admin init")));
    assert!(own.iter().any(|l| l.text.ends_with('&')));
}

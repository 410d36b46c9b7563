//! The red team: attacks on a planted person, through the real server on 127.0.0.1 with TLS.
//!
//! A dataset of 400 persons holds one target whose quasi-identifiers (born 1961, male, from
//! Beijing) are unique; the attacker knows them and wants the target's spend, nights, district
//! or the spot they visited. Every attack in [`attacks::all`] runs in datasets and scenarios of
//! its own, each query submitted by an analyst (or a colleague, or another tenant's analyst, or
//! in development) and approved by a reviewer who approves whatever the automatic checks let
//! through. Each attack's decoder then tries what the attacker would on what was released; the
//! suite fails if any conclusion is the truth, if the analyst ever sees something that depends
//! on the data before a reviewer decides, or if the server stops answering.

mod attacks;
mod world;

use world::{Outcome, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_attack_recovers_the_target() {
    let catalog = attacks::all();
    assert!(catalog.len() >= 60, "{} attacks", catalog.len());
    let classes: std::collections::BTreeSet<&str> = catalog.iter().map(|a| a.class).collect();
    assert!(classes.len() >= 20, "{} classes", classes.len());
    let mut w = World::start().await;
    let mut leaks = Vec::new();
    let mut log = Vec::new();
    // ERHAI_REDTEAM=<text> runs only the attacks whose name or class contains it.
    let only = std::env::var("ERHAI_REDTEAM").ok();
    for attack in &catalog {
        if let Some(only) = &only
            && !attack.name.contains(only.as_str())
            && !attack.class.contains(only.as_str())
        {
            continue;
        }
        let scope = w.scope().await;
        let mut outcomes = Vec::new();
        for step in &attack.steps {
            outcomes.push(w.run(&scope, step).await);
        }
        assert!(
            w.alive().await,
            "[{}] {}: the server stopped answering",
            attack.class,
            attack.name
        );
        let secret = attacks::secret_of(attack);
        let conclusion = (attack.decode)(&outcomes);
        let shown: Vec<String> = outcomes
            .iter()
            .map(|o| match o {
                Outcome::Refused(why) => {
                    format!("refused ({})", why.chars().take(90).collect::<String>())
                }
                Outcome::Nothing => "nothing released".to_string(),
                Outcome::Rows(r) => format!("{} rows", r.len()),
            })
            .collect();
        log.push(format!(
            "[{}] {}: {} → {}",
            attack.class,
            attack.name,
            shown.join(", "),
            conclusion.clone().unwrap_or_else(|| "undetermined".into())
        ));
        if conclusion.as_deref() == Some(secret.as_str()) {
            leaks.push(format!(
                "[{}] {}: decoded the target's {:?} = {secret} from {outcomes:?}",
                attack.class, attack.name, attack.secret
            ));
        }
    }
    println!("{}", log.join("\n"));
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
    w.p.stop().await.expect("stop");
}

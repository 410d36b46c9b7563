//! `erhai-demo`: a throwaway deployment, generated Dali data, and the whole flow — refusal,
//! accepted aggregate, suppression, review, approval, download, audit — each step checked.
//!
//! [`Platform`] is also what the end-to-end tests and benches start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use erhai_client::{Client, ClientError};
use erhai_gateway::{RunningServer, ServerConfig};
use erhai_proto::v1 as pb;

use crate::demo_data::{self, Sizes};

/// Runs the whole flow on generated Dali data in a throwaway deployment, each step checked.
#[derive(Debug, Parser, Clone)]
#[command(name = "erhai-demo", version)]
pub struct DemoArgs {
    /// Keep the server running after the walk-through (prints `ready <endpoint>`).
    #[arg(long)]
    pub keep_running: bool,
    /// Deployment directory (default: a temporary one, removed at exit).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Hotel stays to generate (the other tables scale with it).
    #[arg(long, default_value_t = 200_000)]
    pub stays: usize,
    /// Generator seed.
    #[arg(long, default_value_t = 2023)]
    pub seed: u64,
    /// Write the demo's tables as CSV, their column policies and a scenario application into
    /// this directory, then exit (no server): data to try a deployment of your own with.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["keep_running", "dir"])]
    pub export_data: Option<PathBuf>,
}

/// The documented scenario application (`docs/application.toml`), written by `--export-data`.
pub const APPLICATION: &str = include_str!("../../docs/application.toml");

/// Writes the demo tables (`<name>.csv`), their policies (`<name>.policy.toml`) and the
/// documented scenario application (`application.toml`) into `dir`; returns the files written.
pub fn export_data(
    dir: &Path,
    seed: u64,
    sizes: Sizes,
) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let data = demo_data::generate(seed, sizes)?;
    let mut written = Vec::new();
    for (name, policy, batch) in [
        (
            "hotel_stays",
            demo_data::HOTEL_STAYS_POLICY,
            data.hotel_stays,
        ),
        (
            "scenic_entries",
            demo_data::SCENIC_ENTRIES_POLICY,
            data.scenic_entries,
        ),
        (
            "enterprises",
            demo_data::ENTERPRISES_POLICY,
            data.enterprises,
        ),
    ] {
        let csv = dir.join(format!("{name}.csv"));
        erhai_client::files::write_data(&csv, &batch.schema(), &[batch])?;
        let toml = dir.join(format!("{name}.policy.toml"));
        std::fs::write(&toml, policy)?;
        written.extend([csv, toml]);
    }
    let app = dir.join("application.toml");
    std::fs::write(&app, APPLICATION)?;
    written.push(app);
    Ok(written)
}

/// A running deployment in a directory: the server plus identity bundles under
/// `<dir>/identities/<user>/`.
pub struct Platform {
    /// Deployment directory.
    pub dir: PathBuf,
    /// The server.
    pub server: RunningServer,
    /// The endpoint URL.
    pub endpoint: String,
    _tmp: Option<tempfile::TempDir>,
}

/// The demo tenant (DESIGN.md).
pub const TENANT: &str = "cangshan-data";

impl Platform {
    /// Creates a deployment in `dir` (or a temporary directory) and starts it on a free
    /// loopback port. `edit` may adjust the configuration first.
    pub async fn start(
        dir: Option<PathBuf>,
        edit: impl FnOnce(&mut ServerConfig),
    ) -> Result<Platform, Box<dyn std::error::Error>> {
        let (dir, tmp) = match dir {
            Some(d) => (d, None),
            None => {
                let t = tempfile::Builder::new().prefix("erhai-").tempdir()?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let listen: SocketAddr = "127.0.0.1:0".parse()?;
        let deployment = erhai_gateway::deploy::init(&dir, listen)?;
        let mut cfg = ServerConfig::load(&deployment.config_file)?;
        edit(&mut cfg);
        let server = erhai_gateway::start(cfg).await?;
        let endpoint = erhai_gateway::deploy::endpoint_for(server.addr);
        // The port the server got, not 0: `erhai serve --dir` on this directory later serves
        // the endpoint the identity bundles name.
        erhai_gateway::deploy::pin_listen(&deployment.config_file, server.addr)?;
        std::fs::write(
            deployment
                .admin_identity
                .join(erhai_proto::bundle::ENDPOINT),
            format!("{endpoint}\n"),
        )?;
        Ok(Platform {
            dir,
            server,
            endpoint,
            _tmp: tmp,
        })
    }

    /// The identity bundle directory of `user`.
    pub fn identity(&self, user: &str) -> PathBuf {
        self.dir.join("identities").join(user)
    }

    /// A client connected as `user`.
    pub async fn client(&self, user: &str) -> Result<Client, ClientError> {
        Client::connect_dir(&self.identity(user)).await
    }

    /// Makes sure `tenant` exists with an operating agreement in force (created by the admin,
    /// dated by the `authority` user, who is created first if needed).
    pub async fn ensure_tenant(&self, tenant: &str) -> Result<(), ClientError> {
        let admin = self.client("admin").await?;
        if !self.identity("authority").exists() {
            let req = pb::CreateUserRequest {
                id: "authority".into(),
                name: "杨监管".into(),
                role: "authority".into(),
                ..Default::default()
            };
            admin.add_user(req, &self.identity("authority")).await?;
        }
        match admin.create_tenant(tenant, tenant).await {
            Ok(_) => {}
            Err(ClientError::Status(s)) if s.code() == tonic::Code::AlreadyExists => return Ok(()),
            Err(e) => return Err(e),
        }
        let today = chrono::Utc::now().date_naive();
        let end = today + chrono::Days::new(3 * 365 - 1);
        self.client("authority")
            .await?
            .set_agreement(
                tenant,
                &today.to_string(),
                &end.to_string(),
                "operating agreement signed",
            )
            .await?;
        Ok(())
    }

    /// Creates a user (as admin) with their bundle under `identities/<id>`; returns their client.
    /// A tenant that does not exist yet is created with an agreement in force.
    pub async fn add_user(
        &self,
        id: &str,
        name: &str,
        role: &str,
        tenant: &str,
        unit: &str,
    ) -> Result<Client, ClientError> {
        if !tenant.is_empty() {
            self.ensure_tenant(tenant).await?;
        }
        let admin = self.client("admin").await?;
        let req = pb::CreateUserRequest {
            id: id.into(),
            name: name.into(),
            role: role.into(),
            tenant: tenant.into(),
            unit: unit.into(),
            public_key_pem: String::new(),
            valid_days: 0,
        };
        admin.add_user(req, &self.identity(id)).await?;
        self.client(id).await
    }

    /// Stops the server and starts it again on the same address and directory.
    pub async fn restart(self) -> Result<Platform, Box<dyn std::error::Error>> {
        self.restart_after(|_| Ok(())).await
    }

    /// Stops the server, runs `offline` on its configuration while nothing holds the store (tests
    /// use it to make time pass for stored records), and starts it again.
    pub async fn restart_after(
        self,
        offline: impl FnOnce(&ServerConfig) -> Result<(), Box<dyn std::error::Error>>,
    ) -> Result<Platform, Box<dyn std::error::Error>> {
        let Platform {
            dir,
            server,
            endpoint,
            _tmp,
        } = self;
        let addr = server.addr;
        server.shutdown().await?;
        let mut cfg = ServerConfig::load(&dir.join(erhai_gateway::config::CONFIG_FILE))?;
        cfg.listen = addr;
        offline(&cfg)?;
        let server = erhai_gateway::start(cfg).await?;
        Ok(Platform {
            dir,
            server,
            endpoint,
            _tmp,
        })
    }

    /// Stops the server.
    pub async fn stop(self) -> Result<(), Box<dyn std::error::Error>> {
        self.server.shutdown().await?;
        Ok(())
    }
}

/// The scenario the demo authorizes and leaves active.
pub const DEMO_SCENARIO: &str = "demo-tourism";

/// An application for scenario `name` over `columns` (dataset, column, justification), valid
/// for a year from today.
pub fn application(name: &str, title: &str, columns: &[(&str, &str, &str)]) -> pb::Scenario {
    let today = chrono::Utc::now().date_naive();
    pb::Scenario {
        name: name.into(),
        title: title.into(),
        purpose: "visitor flows, stays and spending per district for the tourism plan".into(),
        domain: "文旅".into(),
        outputs: "district and hotel aggregates, reviewed before release".into(),
        valid_from: today.to_string(),
        valid_to: (today + chrono::Days::new(365)).to_string(),
        columns: columns
            .iter()
            .map(|(d, c, why)| pb::ScenarioColumn {
                dataset: d.to_string(),
                column: c.to_string(),
                justification: why.to_string(),
                approved: true,
            })
            .collect(),
        ..Default::default()
    }
}

/// Takes `application` through the whole review chain as the demo users: `analyst` applies,
/// the center approves, the authority approves (narrowed to `narrowed`, `dataset.column`
/// entries, when not empty), and the demo provider of each unit asked confirms. Prints each
/// step when `log`; returns the active scenario.
pub async fn authorize_scenario(
    p: &Platform,
    analyst: &str,
    application: pb::Scenario,
    narrowed: &[String],
    log: bool,
) -> Result<pb::Scenario, Box<dyn std::error::Error>> {
    let name = application.name.clone();
    let say = |line: String| {
        if log {
            println!("   {line}");
        }
    };
    let columns = application.columns.len();
    let s = p.client(analyst).await?.apply_scenario(application).await?;
    say(format!("applied: {columns} columns → {}", s.status));
    let s = p
        .client("center")
        .await?
        .review_scenario(&name, true, "purpose, domain and columns consistent", &[])
        .await?;
    say(format!(
        "center approved → {} (due {})",
        s.status, s.deadline
    ));
    let why = if narrowed.is_empty() {
        "the columns are necessary for the stated outputs"
    } else {
        "minimum necessary: phone numbers are not needed for statistics"
    };
    let mut s = p
        .client("authority")
        .await?
        .review_scenario(&name, true, why, narrowed)
        .await?;
    say(format!(
        "authority approved{} → {}, awaiting {}",
        if narrowed.is_empty() {
            ""
        } else {
            " a narrower set"
        },
        s.status,
        s.pending_units.join(", ")
    ));
    for unit in s.pending_units.clone() {
        let provider = DEMO_USERS
            .iter()
            .find(|u| u.4 == unit)
            .map(|u| u.0)
            .ok_or_else(|| format!("no demo provider of unit {unit}"))?;
        s = p
            .client(provider)
            .await?
            .review_scenario(&name, true, "confirmed for our data", &[])
            .await?;
        say(format!("{provider} confirmed → {}", s.status));
    }
    Ok(s)
}

/// Authorizes scenario `name` over every column of `datasets` through the whole chain, for tests
/// and benches that exercise the policies rather than the minimum-necessary review.
pub async fn authorize_datasets(
    p: &Platform,
    name: &str,
    datasets: &[&str],
) -> Result<pb::Scenario, Box<dyn std::error::Error>> {
    let app = application_for_datasets(p, name, datasets).await?;
    authorize_scenario(p, "analyst", app, &[], false).await
}

/// An application (as the demo analyst) for every column of `datasets`.
pub async fn application_for_datasets(
    p: &Platform,
    name: &str,
    datasets: &[&str],
) -> Result<pb::Scenario, Box<dyn std::error::Error>> {
    let analyst = p.client("analyst").await?;
    let mut wanted = Vec::new();
    for d in datasets {
        for f in analyst.get_dataset(d).await?.columns {
            wanted.push((d.to_string(), f.name));
        }
    }
    let columns: Vec<(&str, &str, &str)> = wanted
        .iter()
        .map(|(d, c)| (d.as_str(), c.as_str(), "the test exercises every column"))
        .collect();
    Ok(application(name, name, &columns))
}

/// Applies for [`DEMO_SCENARIO`] as the analyst and walks it through the review chain: the
/// center approves, the authority narrows (the phone number is not necessary), each provider
/// confirms. Prints each step; returns the active scenario.
pub async fn authorize_demo_scenario(
    p: &Platform,
) -> Result<pb::Scenario, Box<dyn std::error::Error>> {
    let wanted: [(&str, &str, &str); 11] = [
        (
            "hotel_stays",
            "district",
            "visitors and spending per district",
        ),
        (
            "hotel_stays",
            "id_number",
            "unique visitors are counted per person",
        ),
        ("hotel_stays", "spend_yuan", "spending per district"),
        ("hotel_stays", "hotel_name", "occupancy per hotel and day"),
        ("hotel_stays", "checkin_date", "occupancy per hotel and day"),
        ("hotel_stays", "nights", "length of stay"),
        ("hotel_stays", "phone", "contacting visitors for a survey"),
        ("scenic_entries", "district", "scenic visits per district"),
        ("scenic_entries", "spot_name", "visits per scenic spot"),
        ("enterprises", "industry", "tourism firms per district"),
        ("enterprises", "district", "tourism firms per district"),
    ];
    let narrowed: Vec<String> = wanted
        .iter()
        .filter(|(_, c, _)| *c != "phone")
        .map(|(d, c, _)| format!("{d}.{c}"))
        .collect();
    let app = application(DEMO_SCENARIO, "大理旅游客流与消费统计", &wanted);
    authorize_scenario(p, "analyst", app, &narrowed, true).await
}

/// The users of the demo: (id, name, role, tenant, unit).
/// The authority comes first: adding a tenant's first user dates the tenant's agreement as them.
pub const DEMO_USERS: [(&str, &str, &str, &str, &str); 9] = [
    ("authority", "杨监管", "authority", "", ""),
    ("center", "郑中心", "center", "", ""),
    ("provider", "段文旅", "provider", "", "dali-tourism-bureau"),
    (
        "provider-scenic",
        "杨景区",
        "provider",
        "",
        "dali-scenic-operator",
    ),
    (
        "provider-market",
        "李市监",
        "provider",
        "",
        "dali-market-regulator",
    ),
    ("analyst", "赵分析", "analyst", TENANT, ""),
    ("analyst2", "和建模", "analyst", TENANT, ""),
    ("reviewer", "周审核", "reviewer", "", ""),
    ("auditor", "吴审计", "auditor", "", ""),
];

struct Steps {
    start: Instant,
    n: usize,
}

impl Steps {
    fn step(&mut self, what: &str) {
        self.n += 1;
        println!(
            "\n[{:>5.1}s] {}. {what}",
            self.start.elapsed().as_secs_f64(),
            self.n
        );
    }
}

fn expect(ok: bool, what: &str) -> Result<(), Box<dyn std::error::Error>> {
    if ok {
        println!("   ✓ {what}");
        Ok(())
    } else {
        Err(format!("demo step failed: {what}").into())
    }
}

/// Registers the three demo tables as their providers (usable once a scenario authorizes them).
pub async fn load_demo_data(
    p: &Platform,
    seed: u64,
    sizes: Sizes,
) -> Result<(), Box<dyn std::error::Error>> {
    let data = demo_data::generate(seed, sizes)?;
    let tables = [
        (
            "provider",
            "hotel_stays",
            "旅游住宿登记 (tourism bureau)",
            demo_data::HOTEL_STAYS_POLICY,
            data.hotel_stays,
        ),
        (
            "provider-scenic",
            "scenic_entries",
            "景区入园记录 (scenic-area operator)",
            demo_data::SCENIC_ENTRIES_POLICY,
            data.scenic_entries,
        ),
        (
            "provider-market",
            "enterprises",
            "市场主体登记 (market regulator)",
            demo_data::ENTERPRISES_POLICY,
            data.enterprises,
        ),
    ];
    for (user, name, desc, policy, batch) in tables {
        let c = p.client(user).await?;
        let d = c
            .register(name, desc, policy, batch.schema(), vec![batch])
            .await?;
        println!(
            "   {user} registered {} as {} ({} rows, encrypted)",
            d.name, d.id, d.rows
        );
    }
    Ok(())
}

/// Stores the three demo tables directly in `engine` (no server, no users): for the policy
/// cases and the benches.
pub fn store_demo_tables(
    engine: &erhai_engine::Engine,
    data: demo_data::DemoData,
) -> Result<Vec<erhai_engine::StoredTable>, Box<dyn std::error::Error>> {
    let mut tables = Vec::new();
    for (i, (name, policy, batch)) in [
        (
            "hotel_stays",
            demo_data::HOTEL_STAYS_POLICY,
            data.hotel_stays,
        ),
        (
            "scenic_entries",
            demo_data::SCENIC_ENTRIES_POLICY,
            data.scenic_entries,
        ),
        (
            "enterprises",
            demo_data::ENTERPRISES_POLICY,
            data.enterprises,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        tables.push(store_table(
            engine,
            &format!("ds-{i}"),
            name,
            policy,
            &[batch],
        )?);
    }
    Ok(tables)
}

/// Registers `batches` directly in `engine` (no server) as version 1 of dataset `id`, for
/// tests and benchmarks.
pub fn store_table(
    engine: &erhai_engine::Engine,
    id: &str,
    name: &str,
    policy: &str,
    batches: &[arrow::record_batch::RecordBatch],
) -> Result<erhai_engine::StoredTable, Box<dyn std::error::Error>> {
    let policy = erhai_policies::policy_file::parse_policy(policy)
        .map_err(|e| format!("policy of {name}: {e}"))?;
    let schema = batches
        .first()
        .map(|b| b.schema())
        .ok_or_else(|| format!("{name} has no rows"))?;
    let mut upload = engine.begin_upload(id, 1, schema.clone(), &policy)?;
    for b in batches {
        upload.write(b)?;
    }
    let wrapped_key = upload.wrapped_key.clone();
    upload.finish()?;
    Ok(erhai_engine::StoredTable {
        name: name.into(),
        dataset_id: id.to_string(),
        version: 1,
        wrapped_key,
        schema,
        policy,
        env: erhai_engine::Env::Prod,
    })
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(dir) = &args.export_data {
        for f in export_data(dir, args.seed, Sizes::with_stays(args.stays))? {
            println!("wrote {}", f.display());
        }
        return Ok(());
    }
    let mut s = Steps {
        start: Instant::now(),
        n: 0,
    };
    s.step("creating a throwaway deployment (CA, server certificate, master key) and starting the server");
    if let Some(d) = &args.dir {
        std::fs::create_dir_all(d)?;
    }
    let p = Platform::start(args.dir.clone(), |_| {}).await?;
    println!(
        "   listening on {} (TLS 1.3, client certificates required); data in {}",
        p.endpoint,
        p.dir.display()
    );

    s.step("admin creates users for every role; each gets a certificate and an identity bundle");
    for (id, name, role, tenant, unit) in DEMO_USERS {
        p.add_user(id, name, role, tenant, unit).await?;
        println!(
            "   {id:<16} {role:<9} {}",
            if tenant.is_empty() { unit } else { tenant }
        );
    }

    s.step(&format!(
        "providers register generated Dali data ({} hotel stays) as encrypted Parquet",
        args.stays
    ));
    load_demo_data(&p, args.seed, Sizes::with_stays(args.stays)).await?;

    s.step(&format!(
        "the analyst applies for scenario {DEMO_SCENARIO}; the center, the authority (narrowing \
         the columns) and each provider approve in turn"
    ));
    let scenario = authorize_demo_scenario(&p).await?;
    expect(scenario.status == "active", "the scenario is active")?;

    let analyst = p.client("analyst").await?;
    s.step(
        "the analyst tries to read raw ID numbers — refused, with the column, the use and the rule",
    );
    let sql = "SELECT id_number, district FROM hotel_stays LIMIT 10";
    println!("   SQL: {sql}");
    match analyst.submit_in(sql, DEMO_SCENARIO, 0.0).await {
        Err(ClientError::Status(st)) if st.code() == tonic::Code::PermissionDenied => {
            for line in st.message().lines() {
                println!("   │ {line}");
            }
            expect(
                st.message().contains("hotel_stays.id_number"),
                "refusal names hotel_stays.id_number",
            )?;
        }
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }

    s.step("the analyst develops on the desensitized sample: rows at once, no raw identifier");
    let sql = "SELECT id_number, hotel_name, district, nights FROM hotel_stays LIMIT 3";
    println!("   SQL (--env dev): {sql}");
    let (dev_job, _, rows) = analyst.run_dev(DEMO_SCENARIO, sql).await?;
    for line in erhai::output::batches_table(&rows).lines() {
        println!("   │ {line}");
    }
    let raw_ids = demo_data::generate(args.seed, Sizes::with_stays(args.stays))?;
    let shown = erhai::output::batches_json(&rows).to_string();
    let leaked = raw_ids
        .hotel_stays
        .column_by_name("id_number")
        .and_then(|c| c.as_any().downcast_ref::<arrow::array::StringArray>())
        .is_some_and(|ids| ids.iter().flatten().any(|id| shown.contains(id)));
    expect(
        dev_job.state == "completed" && !leaked && !rows.is_empty(),
        "sample identifiers are pseudonymized; no review needed",
    )?;
    let sql = "SELECT phone FROM hotel_stays LIMIT 3";
    match analyst.run_dev(DEMO_SCENARIO, sql).await {
        Err(ClientError::Status(st)) => {
            println!(
                "   SQL (--env dev): {sql}\n   │ {}",
                st.message().lines().next().unwrap_or("")
            );
            expect(
                st.message().contains("phone"),
                "hotel_stays.phone is outside the scenario: not even its sample is there",
            )?;
        }
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }

    s.step("an aggregate by district, counting unique visitors — accepted, checked, quarantined");
    let sql = "SELECT district, count(DISTINCT id_number) AS visitors, count(*) AS stays, sum(spend_yuan) AS spend \
               FROM hotel_stays GROUP BY district ORDER BY district";
    println!("   SQL: {sql}");
    let by_district = analyst.submit_in(sql, DEMO_SCENARIO, 0.0).await?;
    println!(
        "   job {}: {} — until a reviewer decides, the analyst sees nothing that depends on the data \
         (no counts, no errors, no timing)",
        by_district.id, by_district.state
    );
    expect(
        by_district.state == "awaiting_review" && by_district.report.is_none(),
        "the analyst's view is data-independent",
    )?;
    let reviewer = p.client("reviewer").await?;
    let limit = std::time::Duration::from_secs(600);
    let checked = reviewer.finished(&by_district.id, limit).await?;
    let report = checked.report.clone().unwrap_or_default();
    println!(
        "   the reviewer sees: {} — {} rows computed, {} suppressed",
        checked.state, report.rows_computed, report.rows_suppressed
    );
    expect(
        checked.state == "awaiting_review"
            && report.rows_released == 12
            && report.rows_suppressed == 0,
        "all 12 districts pass the threshold",
    )?;

    s.step("a fine-grained query (hotel × day) — small groups are suppressed automatically");
    let sql = "SELECT hotel_name, checkin_date, count(*) AS stays FROM hotel_stays GROUP BY hotel_name, checkin_date";
    println!("   SQL: {sql}");
    let fine = analyst.submit_in(sql, DEMO_SCENARIO, 0.0).await?;
    let fine_checked = reviewer.finished(&fine.id, limit).await?;
    let fr = fine_checked.report.clone().unwrap_or_default();
    println!(
        "   job {}: the reviewer sees {} rows computed, {} released, {} suppressed (fewer than {} \
         distinct persons)",
        fine.id, fr.rows_computed, fr.rows_released, fr.rows_suppressed, fr.threshold_k
    );
    expect(fr.rows_suppressed > 0, "small groups were suppressed")?;

    s.step("the export reviewer inspects the district job: SQL, lineage, report, preview");
    let pending = reviewer.pending().await?;
    println!("   {} jobs awaiting review", pending.len());
    let (detail, preview) = reviewer.show_review(&by_district.id).await?;
    if let Some(v) = detail.job.as_ref().and_then(|j| j.verdict.as_ref()) {
        for c in &v.columns {
            println!("   column {:<9} ← {} [{}]", c.column, c.derivation, c.rule);
        }
    }
    println!("{}", erhai::output::batches_table(&preview));
    expect(
        detail.preview_rows == 12,
        "preview shows the 12 district rows",
    )?;

    s.step("the reviewer approves the district job and rejects the fine-grained one");
    let approved = reviewer
        .decide(
            &by_district.id,
            true,
            "district totals, all cells above threshold",
        )
        .await?;
    let rejected = reviewer
        .decide(&fine.id, false, "too fine-grained for release")
        .await?;
    println!(
        "   {} → {}; {} → {}",
        approved.id, approved.state, rejected.id, rejected.state
    );
    expect(
        approved.state == "released" && rejected.state == "rejected",
        "decisions recorded",
    )?;

    s.step("the analyst downloads the released result with its signed receipt");
    let (file, receipt) = analyst.fetch_file(&by_district.id, "csv").await?;
    let out = p.dir.join("release-by-district.csv");
    std::fs::write(&out, &file)?;
    std::fs::write(erhai_client::files::receipt_path(&out), &receipt)?;
    let key = analyst.platform_key().await?;
    let verified = erhai_client::receipt::verify(&receipt, &file, &key)
        .map_err(|e| format!("the receipt does not verify: {e}"))?;
    println!(
        "   wrote {} rows to {}; receipt verified offline (release {}, approved by {})",
        verified.rows,
        out.display(),
        verified.release,
        verified.reviewers.join(", ")
    );
    expect(verified.rows == 12, "12 rows released")?;
    let mut altered = file.clone();
    if let Some(b) = altered.iter_mut().rev().find(|b| b.is_ascii_digit()) {
        *b = if *b == b'9' { b'8' } else { *b + 1 };
    }
    expect(
        erhai_client::receipt::verify(&receipt, &altered, &key).is_err(),
        "an altered file fails verification",
    )?;
    let refused_fetch = analyst.fetch(&fine.id).await;
    expect(
        matches!(refused_fetch, Err(ClientError::Status(ref st)) if st.code() == tonic::Code::FailedPrecondition),
        "a rejected result cannot be downloaded",
    )?;

    s.step("the auditor reads and verifies the audit chain");
    let auditor = p.client("auditor").await?;
    let events = auditor.audit(10_000, "", "").await?;
    let denied = events.iter().filter(|e| e.outcome == "denied").count();
    println!("   {} events ({} denied)", events.len(), denied);
    let v = auditor.audit_verify().await?;
    println!("   {}", v.detail);
    expect(
        v.ok && denied >= 1,
        "audit chain intact and the refusal recorded",
    )?;

    s.step("at rest, everything is ciphertext: no raw ID number appears in the data directory");
    let data = demo_data::generate(args.seed, Sizes::with_stays(args.stays))?;
    let sample = arrow::array::AsArray::as_string::<i32>(data.hotel_stays.column(2))
        .value(0)
        .to_string();
    let found = contains_bytes(&p.dir, sample.as_bytes())?;
    expect(!found, &format!("{}… not found on disk", &sample[..6]))?;

    println!(
        "\ndemo finished: every step behaved as expected ({:.1}s)",
        s.start.elapsed().as_secs_f64()
    );
    if args.keep_running {
        println!(
            "identity bundles: {}/identities/<user>/ — e.g.\n  erhai --identity {} query submit --scenario demo-tourism --sql \"SELECT district, count(*) FROM hotel_stays GROUP BY district\"",
            p.dir.display(),
            p.identity("analyst").display()
        );
        println!("ready {}", p.endpoint);
        erhai::termination().await?;
    }
    p.stop().await
}

/// Whether any file under `dir` contains `needle`.
pub fn contains_bytes(dir: &Path, needle: &[u8]) -> std::io::Result<bool> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            if contains_bytes(&path, needle)? {
                return Ok(true);
            }
        } else {
            let bytes = std::fs::read(&path)?;
            if bytes.windows(needle.len()).any(|w| w == needle) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

//! `erhai policy draft` on a provider's CSV with Chinese headers: the draft parses, fits the
//! file's schema, finds the kinds, warns where it should and states no value of the file.

use std::fmt::Write as _;
use std::process::Command;

use erhai_policies::ColumnKind;
use erhai_policies::policy_file::parse_policy;

/// An 18-digit resident ID number with its GB 11643 check digit.
fn resident_id(n: u32) -> String {
    let body = format!("53290119{:02}0101{:03}", 60 + n % 30, n % 1000);
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .chars()
        .zip(weights)
        .map(|(c, w)| c.to_digit(10).expect("digit") * w)
        .sum();
    let check = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize];
    format!("{body}{check}")
}

#[test]
fn drafts_a_policy_for_a_csv_with_chinese_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("住宿.csv");
    let names = [
        "张三丰",
        "李四",
        "王五",
        "赵六",
        "钱七七",
        "孙八",
        "周九",
        "吴十",
    ];
    let districts = ["古城", "喜洲", "双廊"];
    let mut text = "身份证号,姓名,手机,备用,消费金额,诊断,区县,备注\n".to_string();
    let mut values = Vec::new();
    for i in 0..40u32 {
        let id = resident_id(i);
        let name = names[i as usize % names.len()];
        let phone = format!("139{:08}", 10_000_000 + i * 7);
        let spare = format!("186{:08}", 20_000_000 + i * 3);
        let spend = format!("{}.{:02}", 100 + i, (i * 13) % 100);
        let note = format!("备注第{i}条记录");
        writeln!(
            text,
            "{id},{name},{phone},{spare},{spend},感冒,{},{note}",
            districts[i as usize % 3]
        )
        .expect("write");
        values.extend([id, name.to_string(), phone, spare, spend, note]);
    }
    values.extend(["感冒".to_string(), "古城".to_string(), "喜洲".to_string()]);
    std::fs::write(&csv, text).expect("csv");
    let out_path = dir.path().join("policy.toml");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_erhai"))
            .args(["policy", "draft", "--file"])
            .arg(&csv)
            .arg("--out")
            .arg(&out_path)
            .output()
            .expect("run erhai")
    };
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    let draft = std::fs::read_to_string(&out_path).expect("draft written");

    // It parses and fits the schema the CSV is registered with (types from the draft).
    let policy = parse_policy(&draft).expect("the draft parses");
    let (schema, _) = erhai_client::files::read_data(&csv, Some(&draft)).expect("read");
    let schema: Vec<(String, String)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().to_string()))
        .collect();
    policy.validate_against(&schema).expect("fits the schema");

    let kind = |c: &str| policy.column(c).map(|p| p.kind);
    assert_eq!(policy.privacy_unit, "身份证号");
    assert_eq!(kind("身份证号"), Some(ColumnKind::IdCard));
    assert_eq!(kind("姓名"), Some(ColumnKind::Name));
    assert_eq!(kind("手机"), Some(ColumnKind::Phone));
    assert_eq!(kind("备用"), Some(ColumnKind::Phone));
    assert_eq!(kind("消费金额"), Some(ColumnKind::Measure));
    assert_eq!(kind("区县"), Some(ColumnKind::Dimension));
    assert_eq!(kind("备注"), Some(ColumnKind::Other));
    let col = |c: &str| policy.column(c).expect("column");
    assert!(col("诊断").sensitive_personal && col("诊断").uses.is_empty());
    for c in ["身份证号", "姓名", "手机", "备用"] {
        assert!(col(c).personal, "{c} is personal");
        assert!(
            !col(c).allows(erhai_policies::Use::Output),
            "{c} is never output"
        );
    }
    let declared = |c: &str| col(c).data_type.clone().unwrap_or_default();
    assert_eq!(declared("手机"), "Utf8");
    assert_eq!(declared("身份证号"), "Utf8");
    assert_eq!(declared("消费金额"), "Decimal128(18, 2)");
    assert!(
        draft.contains("detected id_card: 40 of 40 sampled values"),
        "{draft}"
    );

    // Warnings on stderr and in the draft.
    for w in [
        "column \"手机\": phone numbers read as Int64; declared Utf8",
        "column \"备用\": looks like phone from its values but its header does not say so",
        "column \"消费金额\": money reads as Float64; declared Decimal128(18, 2)",
        "column \"备注\": kind could not be decided",
    ] {
        assert!(stderr.contains(w), "stderr lacks {w}: {stderr}");
        assert!(
            draft.contains(&format!("# WARNING: {w}")),
            "draft lacks {w}: {draft}"
        );
    }

    // No value of the file is stated anywhere.
    for v in &values {
        for (what, s) in [("draft", &draft), ("stdout", &stdout), ("stderr", &stderr)] {
            assert!(
                !s.contains(v.as_str()),
                "{what} states a value of the file: {v}"
            );
        }
    }

    // An existing draft is not overwritten without --force.
    let again = run();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("give --force"));
    let forced = Command::new(env!("CARGO_BIN_EXE_erhai"))
        .args(["policy", "draft", "--force", "--file"])
        .arg(&csv)
        .arg("--out")
        .arg(&out_path)
        .output()
        .expect("run erhai");
    assert!(forced.status.success());
}

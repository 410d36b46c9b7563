//! How the contract's messages read as JSON. `serde::Serialize` is derived on every message at
//! build time (`build.rs`); a few fields read differently from their wire form, for the people
//! and scripts that read them: times as UTC text under their name without `_ms`, a position
//! that may be absent (`-1`) as null, a public key as hex, and Arrow payloads left out (the
//! client decodes those into rows).

use serde::Serializer;

/// A time for people (UTC, `YYYY-MM-DD HH:MM:SS`); empty for 0, which the contract uses for
/// "never" or "not yet".
pub fn utc(ms: i64) -> String {
    if ms == 0 {
        return String::new();
    }
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

pub(crate) fn time<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&utc(*ms))
}

pub(crate) fn position<S: Serializer>(at: &i64, s: S) -> Result<S::Ok, S::Error> {
    if *at >= 0 {
        s.serialize_some(at)
    } else {
        s.serialize_none()
    }
}

pub(crate) fn hex<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::v1 as pb;

    #[test]
    fn messages_read_as_json_with_times_positions_and_keys_for_people() {
        let j = pb::Job {
            id: "j1".into(),
            submitted_at_ms: 1_767_225_600_000,
            report: Some(pb::CheckReport {
                rows: vec![
                    pb::RowCheck {
                        released_row: -1,
                        ..Default::default()
                    },
                    pb::RowCheck {
                        released_row: 3,
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        let v = serde_json::to_value(&j).expect("json");
        assert_eq!(v["submitted_at"], "2026-01-01 00:00:00");
        assert_eq!(v["finished_at"], "");
        assert!(v.get("submitted_at_ms").is_none());
        assert_eq!(v["report"]["rows"][0]["released_row"], json!(null));
        assert_eq!(v["report"]["rows"][1]["released_row"], 3);
        assert_eq!(v["verdict"], json!(null));

        let c = pb::ColumnInfo {
            data_type: "Int64".into(),
            ..Default::default()
        };
        assert_eq!(serde_json::to_value(&c).expect("json")["type"], "Int64");
        let r = pb::Refusal {
            r#use: "group_by".into(),
            ..Default::default()
        };
        assert_eq!(serde_json::to_value(&r).expect("json")["use"], "group_by");

        let k = pb::PlatformKeyResponse {
            public_key: vec![0xab, 0x01],
        };
        assert_eq!(
            serde_json::to_value(&k).expect("json")["public_key"],
            "ab01"
        );
        let d = pb::ReviewDetail {
            preview_ipc: vec![1, 2, 3],
            ..Default::default()
        };
        assert!(
            serde_json::to_value(&d)
                .expect("json")
                .get("preview_ipc")
                .is_none()
        );
    }
}

//! A deterministic generator of Dali-like public data (DESIGN.md "demo data"). The same seed and
//! sizes give the same rows, so tests, the demo and benchmarks share it.
//!
//! Resident ID numbers are realistic: a real region code, a birth date, a sequence whose parity
//! gives the gender, and a valid ISO 7064 MOD 11-2 check character.

use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Decimal128Array, Int32Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono::{Datelike, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Dali's twelve districts with their region codes.
pub const DISTRICTS: [(&str, &str); 12] = [
    ("大理市", "532901"),
    ("漾濞县", "532922"),
    ("祥云县", "532923"),
    ("宾川县", "532924"),
    ("弥渡县", "532925"),
    ("南涧县", "532926"),
    ("巍山县", "532927"),
    ("永平县", "532928"),
    ("云龙县", "532929"),
    ("洱源县", "532930"),
    ("剑川县", "532931"),
    ("鹤庆县", "532932"),
];

/// Home regions of visitors: province, city, region code.
const HOMES: [(&str, &str, &str); 10] = [
    ("云南省", "昆明市", "530102"),
    ("云南省", "大理州", "532901"),
    ("四川省", "成都市", "510104"),
    ("广东省", "广州市", "440103"),
    ("北京市", "北京市", "110101"),
    ("上海市", "上海市", "310101"),
    ("浙江省", "杭州市", "330102"),
    ("湖南省", "长沙市", "430102"),
    ("贵州省", "贵阳市", "520102"),
    ("重庆市", "重庆市", "500103"),
];

const SURNAMES: [&str; 16] = [
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "段", "杜", "和", "欧阳", "司马",
    "诸葛",
];
const GIVEN: [&str; 20] = [
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明",
    "超", "秀英", "海", "霞",
];
const HOTEL_WORDS: [&str; 8] = [
    "洱海",
    "苍山",
    "古城",
    "风花雪月",
    "蝴蝶泉",
    "三塔",
    "双廊",
    "喜洲",
];
const HOTEL_KINDS: [&str; 4] = ["客栈", "酒店", "民宿", "宾馆"];
const SPOTS: [(&str, usize); 10] = [
    ("崇圣寺三塔", 0),
    ("大理古城", 0),
    ("洱海公园", 0),
    ("苍山", 0),
    ("喜洲古镇", 0),
    ("鸡足山", 3),
    ("巍山古城", 6),
    ("沙溪古镇", 10),
    ("石宝山", 10),
    ("茈碧湖", 9),
];
const INDUSTRIES: [&str; 8] = [
    "住宿业",
    "餐饮业",
    "旅行社",
    "零售业",
    "农业",
    "制造业",
    "交通运输",
    "文化娱乐",
];

/// Weights of the ISO 7064 MOD 11-2 check over the first 17 digits.
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

/// The check character of the first 17 digits of a resident ID, or None if they are not digits.
pub fn id_check_char(first17: &str) -> Option<char> {
    if first17.len() != 17 {
        return None;
    }
    let mut sum = 0;
    for (c, w) in first17.chars().zip(ID_WEIGHTS) {
        sum += c.to_digit(10)? * w;
    }
    Some(ID_CHECK[(sum % 11) as usize])
}

/// Sizes of the generated tables.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Distinct persons.
    pub persons: usize,
    /// Hotel stays.
    pub stays: usize,
    /// Scenic-area entries.
    pub entries: usize,
    /// Enterprises.
    pub enterprises: usize,
}

impl Sizes {
    /// The demo's default: 200k stays.
    pub fn demo() -> Sizes {
        Sizes {
            persons: 60_000,
            stays: 200_000,
            entries: 150_000,
            enterprises: 5_000,
        }
    }

    /// Scaled from a number of stays.
    pub fn with_stays(stays: usize) -> Sizes {
        Sizes {
            persons: (stays * 3 / 10).max(50),
            stays,
            entries: stays * 3 / 4,
            enterprises: (stays / 40).max(50),
        }
    }
}

struct Person {
    id: String,
    name: String,
    phone: String,
    gender: &'static str,
    birth_year: i32,
    home: usize,
}

fn person(rng: &mut ChaCha8Rng) -> Person {
    let home = rng.random_range(0..HOMES.len());
    let birth = NaiveDate::from_ymd_opt(1950, 1, 1).unwrap_or_default()
        + chrono::Duration::days(rng.random_range(0..365 * 55));
    let seq = rng.random_range(0..1000u32);
    let first17 = format!("{}{}{seq:03}", HOMES[home].2, birth.format("%Y%m%d"));
    let check = id_check_char(&first17).unwrap_or('0');
    let surname = SURNAMES[rng.random_range(0..SURNAMES.len())];
    let mut name = surname.to_string();
    for _ in 0..rng.random_range(1..=2) {
        name.push_str(GIVEN[rng.random_range(0..GIVEN.len())]);
    }
    let prefixes = ["139", "138", "158", "187", "135", "152", "177", "199"];
    let phone = format!(
        "{}{:08}",
        prefixes[rng.random_range(0..prefixes.len())],
        rng.random_range(0..100_000_000u32)
    );
    Person {
        id: format!("{first17}{check}"),
        name,
        phone,
        gender: if seq % 2 == 1 { "男" } else { "女" },
        birth_year: birth.year(),
        home,
    }
}

fn days_since_epoch(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days() as i32
}

fn decimal(values: Vec<i128>) -> Result<ArrayRef, arrow::error::ArrowError> {
    Ok(Arc::new(
        Decimal128Array::from(values).with_precision_and_scale(12, 2)?,
    ))
}

fn strings(v: Vec<String>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}

/// The three demo tables.
pub struct DemoData {
    /// `hotel_stays`.
    pub hotel_stays: RecordBatch,
    /// `scenic_entries`.
    pub scenic_entries: RecordBatch,
    /// `enterprises`.
    pub enterprises: RecordBatch,
}

/// Generates the demo tables.
pub fn generate(seed: u64, sizes: Sizes) -> Result<DemoData, arrow::error::ArrowError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let persons: Vec<Person> = (0..sizes.persons.max(1))
        .map(|_| person(&mut rng))
        .collect();
    // A few hotels per district; the city has many more.
    let mut hotels: Vec<(String, usize)> = Vec::new();
    for (d, (district, _)) in DISTRICTS.iter().enumerate() {
        let n = if d == 0 { 40 } else { 8 };
        for h in 0..n {
            let place = district.trim_end_matches(['市', '县']);
            hotels.push((
                format!(
                    "{place}{}{}{}",
                    HOTEL_WORDS[h % HOTEL_WORDS.len()],
                    HOTEL_KINDS[(h / HOTEL_WORDS.len()) % HOTEL_KINDS.len()],
                    h / 32 + 1
                ),
                d,
            ));
        }
    }
    let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or_default();

    let n = sizes.stays;
    let (
        mut stay_id,
        mut guest,
        mut idn,
        mut phone,
        mut gender,
        mut by,
        mut prov,
        mut city,
        mut hotel,
        mut district,
        mut date,
        mut nights,
        mut spend,
    ) = (
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
    );
    for i in 0..n {
        // Skewed towards a core of repeat visitors.
        let p = &persons[if rng.random_bool(0.3) {
            rng.random_range(0..persons.len().div_ceil(10))
        } else {
            rng.random_range(0..persons.len())
        }];
        // Half of all stays are in the city.
        let h = if rng.random_bool(0.5) {
            rng.random_range(0..40)
        } else {
            rng.random_range(0..hotels.len())
        };
        let nts = rng.random_range(1..=7);
        stay_id.push(format!("S{:09}", i + 1));
        guest.push(p.name.clone());
        idn.push(p.id.clone());
        phone.push(p.phone.clone());
        gender.push(p.gender.to_string());
        by.push(p.birth_year);
        prov.push(HOMES[p.home].0.to_string());
        city.push(HOMES[p.home].1.to_string());
        hotel.push(hotels[h].0.clone());
        district.push(DISTRICTS[hotels[h].1].0.to_string());
        date.push(days_since_epoch(start) + rng.random_range(0..366));
        nights.push(nts);
        spend.push(i128::from(nts) * rng.random_range(15_000..90_000i64) as i128);
    }
    let stays_schema = hotel_stays_schema();
    let hotel_stays = RecordBatch::try_new(
        stays_schema,
        vec![
            strings(stay_id),
            strings(guest),
            strings(idn),
            strings(phone),
            strings(gender),
            Arc::new(Int32Array::from(by)),
            strings(prov),
            strings(city),
            strings(hotel),
            strings(district),
            Arc::new(Date32Array::from(date)),
            Arc::new(Int32Array::from(nights)),
            decimal(spend)?,
        ],
    )?;

    let (mut eid, mut eidn, mut spot, mut edist, mut edate, mut ticket) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for i in 0..sizes.entries {
        let p = &persons[rng.random_range(0..persons.len())];
        let (s, d) = SPOTS[rng.random_range(0..SPOTS.len())];
        eid.push(format!("E{:09}", i + 1));
        eidn.push(p.id.clone());
        spot.push(s.to_string());
        edist.push(DISTRICTS[d].0.to_string());
        edate.push(days_since_epoch(start) + rng.random_range(0..366));
        ticket.push([0i128, 3000, 4000, 7500, 12100][rng.random_range(0..5)]);
    }
    let scenic_entries = RecordBatch::try_new(
        scenic_entries_schema(),
        vec![
            strings(eid),
            strings(eidn),
            strings(spot),
            strings(edist),
            Arc::new(Date32Array::from(edate)),
            decimal(ticket)?,
        ],
    )?;

    let (mut code, mut ename, mut rep, mut rphone, mut ind, mut dist, mut cap, mut emp, mut rev) = (
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
    );
    const ALNUM: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    for i in 0..sizes.enterprises {
        let d = if rng.random_bool(0.4) {
            0
        } else {
            rng.random_range(0..DISTRICTS.len())
        };
        let org: String = (0..9)
            .map(|_| ALNUM[rng.random_range(0..ALNUM.len())] as char)
            .collect();
        let check = ALNUM[rng.random_range(0..ALNUM.len())] as char;
        let boss = person(&mut rng);
        let industry = INDUSTRIES[rng.random_range(0..INDUSTRIES.len())];
        code.push(format!("91{}{org}{check}", DISTRICTS[d].1));
        ename.push(format!(
            "大理{}{}有限公司{}",
            HOTEL_WORDS[i % HOTEL_WORDS.len()],
            industry,
            i + 1
        ));
        rep.push(boss.name);
        rphone.push(boss.phone);
        ind.push(industry.to_string());
        dist.push(DISTRICTS[d].0.to_string());
        cap.push(rng.random_range(1_000..5_000_000i64) as i128);
        emp.push(rng.random_range(1..500));
        rev.push(rng.random_range(0..20_000_000i64) as i128);
    }
    let enterprises = RecordBatch::try_new(
        enterprises_schema(),
        vec![
            strings(code),
            strings(ename),
            strings(rep),
            strings(rphone),
            strings(ind),
            strings(dist),
            decimal(cap)?,
            Arc::new(Int32Array::from(emp)),
            decimal(rev)?,
        ],
    )?;
    Ok(DemoData {
        hotel_stays,
        scenic_entries,
        enterprises,
    })
}

fn schema(fields: &[(&str, DataType)]) -> SchemaRef {
    Arc::new(Schema::new(
        fields
            .iter()
            .map(|(n, t)| Field::new(*n, t.clone(), false))
            .collect::<Vec<_>>(),
    ))
}

/// Schema of `hotel_stays`.
pub fn hotel_stays_schema() -> SchemaRef {
    use DataType::*;
    schema(&[
        ("stay_id", Utf8),
        ("guest_name", Utf8),
        ("id_number", Utf8),
        ("phone", Utf8),
        ("gender", Utf8),
        ("birth_year", Int32),
        ("home_province", Utf8),
        ("home_city", Utf8),
        ("hotel_name", Utf8),
        ("district", Utf8),
        ("checkin_date", Date32),
        ("nights", Int32),
        ("spend_yuan", Decimal128(12, 2)),
    ])
}

/// Schema of `scenic_entries`.
pub fn scenic_entries_schema() -> SchemaRef {
    use DataType::*;
    schema(&[
        ("entry_id", Utf8),
        ("id_number", Utf8),
        ("spot_name", Utf8),
        ("district", Utf8),
        ("entry_date", Date32),
        ("ticket_yuan", Decimal128(12, 2)),
    ])
}

/// Schema of `enterprises`.
pub fn enterprises_schema() -> SchemaRef {
    use DataType::*;
    schema(&[
        ("credit_code", Utf8),
        ("name", Utf8),
        ("legal_rep_name", Utf8),
        ("legal_rep_phone", Utf8),
        ("industry", Utf8),
        ("district", Utf8),
        ("registered_capital_wan", Decimal128(12, 2)),
        ("employees", Int32),
        ("revenue_wan", Decimal128(12, 2)),
    ])
}

/// The policy files of the demo tables (policies/presets/).
pub const HOTEL_STAYS_POLICY: &str = include_str!("../../policies/presets/hotel_stays.toml");
/// Policy of `scenic_entries`.
pub const SCENIC_ENTRIES_POLICY: &str = include_str!("../../policies/presets/scenic_entries.toml");
/// Policy of `enterprises`.
pub const ENTERPRISES_POLICY: &str = include_str!("../../policies/presets/enterprises.toml");

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;

    #[test]
    fn deterministic_and_valid_ids() {
        let a = generate(7, Sizes::with_stays(500)).expect("generate");
        let b = generate(7, Sizes::with_stays(500)).expect("generate");
        assert_eq!(a.hotel_stays, b.hotel_stays);
        let ids = a.hotel_stays.column(2).as_string::<i32>();
        for id in ids.iter().flatten() {
            assert_eq!(id.len(), 18, "{id}");
            assert_eq!(id_check_char(&id[..17]), id.chars().last(), "{id}");
        }
        // Known valid example from GB 11643: 11010519491231002X.
        assert_eq!(id_check_char("11010519491231002"), Some('X'));
    }
}

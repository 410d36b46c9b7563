//! What a single value or a header looks like: the detectors `erhai policy draft` counts over a
//! column's sampled values, and the header words that hint at a column's kind.

use std::net::IpAddr;

use erhai_policies::ColumnKind;

/// Weights of the first 17 digits in the GB 11643-1999 check digit (2^(17-i) mod 11).
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// The check character for each remainder of the weighted sum mod 11.
const ID_CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

/// An 18-character resident identity number whose GB 11643 check character is right (`X` in
/// either case).
pub fn is_resident_id(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() != 18 || !chars[..17].iter().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = chars[..17]
        .iter()
        .zip(ID_WEIGHTS)
        .filter_map(|(c, w)| c.to_digit(10).map(|d| d * w))
        .sum();
    // `sum % 11` is below 11, so the index is in bounds.
    ID_CHECK[(sum % 11) as usize] == chars[17].to_ascii_uppercase()
}

/// A mainland mobile number, `1[3-9]` and nine digits, optionally written with `+86` / `86`
/// and spaces or dashes.
pub fn is_mobile(s: &str) -> bool {
    let digits: String = s.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let digits = digits
        .strip_prefix("+86")
        .or_else(|| digits.strip_prefix("86").filter(|d| d.len() == 11))
        .unwrap_or(&digits);
    let b = digits.as_bytes();
    b.len() == 11
        && b[0] == b'1'
        && (b'3'..=b'9').contains(&b[1])
        && b.iter().all(u8::is_ascii_digit)
}

/// Two to four Han characters, the shape of most Chinese names (only counted in a column whose
/// header says it holds names: district and village names have the same shape).
pub fn is_chinese_name(s: &str) -> bool {
    let n = s.chars().count();
    (2..=4).contains(&n) && s.chars().all(is_han)
}

fn is_han(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}')
}

/// `local@domain.tld`, without spaces.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && !s.chars().any(char::is_whitespace)
        && domain
            .split_once('.')
            .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty() && !b.ends_with('.'))
}

/// Province abbreviations that start a mainland licence plate.
const PLATE_PROVINCES: &str = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼";

/// A mainland licence plate: a province, a letter, then five (or six, new-energy) letters and
/// digits, optionally after `·` or a space.
pub fn is_plate(s: &str) -> bool {
    let mut chars = s.chars();
    let (Some(p), Some(l)) = (chars.next(), chars.next()) else {
        return false;
    };
    let rest: Vec<char> = chars.filter(|c| !matches!(c, '·' | ' ')).collect();
    PLATE_PROVINCES.contains(p)
        && l.is_ascii_uppercase()
        && (5..=6).contains(&rest.len())
        && rest
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || matches!(c, '挂' | '学'))
}

/// An IPv4 or IPv6 address.
pub fn is_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

/// A plausible date of birth: `YYYY-MM-DD`, `YYYY/MM/DD` or `YYYYMMDD` between 1900 and 2100.
pub fn is_date(s: &str) -> bool {
    let digits: String = s.chars().filter(|c| !matches!(c, '-' | '/')).collect();
    let separators = s.len() - digits.len();
    if digits.len() != 8 || !(separators == 0 || separators == 2) {
        return false;
    }
    let Ok(n) = digits.parse::<u32>() else {
        return false;
    };
    let (y, m, d) = (n / 10_000, n / 100 % 100, n % 100);
    (1900..=2100).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d)
}

/// A 16- to 19-digit number whose Luhn check holds, as bank card numbers do.
pub fn is_bank_card(s: &str) -> bool {
    let b = s.as_bytes();
    if !(16..=19).contains(&b.len()) || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = b
        .iter()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let d = u32::from(c - b'0');
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 { d2 - 9 } else { d2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// What a column's header says about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hint {
    /// A personal kind of the policy model (身份证号, 手机, 姓名, 银行卡, 地址, 邮箱, 车牌, IP,
    /// 出生日期): the values decide it when they can.
    Kind(ColumnKind),
    /// Health data (诊断, 病): sensitive personal information.
    Health,
    /// An attribute that identifies in combination (年龄, 性别, 职业, …).
    QuasiIdentifier,
    /// Money (金额, 价格, 消费, amount, price, fee).
    Money,
    /// A record key (编号, 序号, `id`).
    RecordKey,
}

/// Header words for each hint, lower case; the first hint whose word the header contains wins,
/// so the more specific hints come first.
const HINTS: &[(Hint, &[&str])] = &[
    (
        Hint::Health,
        &[
            "诊断", "病", "health", "diagnos", "disease", "medical", "医疗",
        ],
    ),
    (
        Hint::Kind(ColumnKind::IdCard),
        &[
            "身份证",
            "证件号",
            "id_card",
            "idcard",
            "id_number",
            "id_no",
            "citizen_id",
        ],
    ),
    (
        Hint::Kind(ColumnKind::BankCard),
        &["银行卡", "卡号", "bank", "card_no", "card_number"],
    ),
    (
        Hint::Kind(ColumnKind::Phone),
        &["手机", "电话", "联系方式", "phone", "mobile", "tel"],
    ),
    (
        Hint::Kind(ColumnKind::Email),
        &["邮箱", "电子邮件", "email", "e-mail", "mail"],
    ),
    (Hint::Kind(ColumnKind::Plate), &["车牌", "号牌", "plate"]),
    (
        Hint::Kind(ColumnKind::IpAddress),
        &["ip地址", "ip_address", "ip_addr", "client_ip"],
    ),
    (
        Hint::Kind(ColumnKind::BirthDate),
        &["出生", "生日", "birth", "dob"],
    ),
    (
        Hint::Kind(ColumnKind::Address),
        &["地址", "住址", "address", "addr"],
    ),
    (
        Hint::Kind(ColumnKind::Name),
        &["姓名", "名字", "联系人", "name"],
    ),
    (
        Hint::QuasiIdentifier,
        &[
            "年龄",
            "性别",
            "民族",
            "职业",
            "籍贯",
            "户籍",
            "学历",
            "婚姻",
            "邮编",
            "age",
            "gender",
            "sex",
            "occupation",
            "education",
            "zip",
            "postcode",
        ],
    ),
    (
        Hint::Money,
        &[
            "金额", "价格", "消费", "费用", "收入", "工资", "amount", "price", "spend", "fee",
            "cost", "revenue", "income", "salary", "yuan",
        ],
    ),
    (Hint::RecordKey, &["编号", "序号", "流水号"]),
];

/// Header words that name something other than a person, so that `name` in `hotel_name` does
/// not make a column of hotel names a column of people's names.
const NOT_A_PERSON: &[&str] = &[
    "hotel",
    "shop",
    "store",
    "company",
    "firm",
    "enterprise",
    "scenic",
    "spot",
    "district",
    "city",
    "province",
    "county",
    "village",
    "product",
    "file",
    "host",
    "酒店",
    "宾馆",
    "店名",
    "公司",
    "企业",
    "景区",
    "景点",
    "行政区",
    "区县",
    "城市",
    "省份",
    "村名",
    "商户",
    "商品",
    "产品",
];

/// The hint a header gives, if any.
pub fn header_hint(header: &str) -> Option<Hint> {
    let h = header.to_lowercase();
    if h == "id" || h.ends_with("_id") || h == "ip" {
        return Some(if h == "ip" {
            Hint::Kind(ColumnKind::IpAddress)
        } else {
            Hint::RecordKey
        });
    }
    // Short English words match whole words only: `age` is not in `average`, `tel` not in
    // `hotel`.
    let tokens: Vec<&str> = h.split(|c: char| !c.is_alphanumeric()).collect();
    let matches = |w: &&str| {
        if w.is_ascii() && w.len() <= 4 {
            tokens.contains(w)
        } else {
            h.contains(w)
        }
    };
    let hint = HINTS
        .iter()
        .find(|(_, words)| words.iter().any(matches))
        .map(|(hint, _)| *hint)?;
    let names_a_thing = NOT_A_PERSON.iter().any(|w| h.contains(w));
    match hint {
        Hint::Kind(ColumnKind::Name)
        | Hint::Kind(ColumnKind::Address)
        | Hint::Kind(ColumnKind::Phone)
        | Hint::Kind(ColumnKind::Email)
            if names_a_thing =>
        {
            None
        }
        _ => Some(hint),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_ids_need_the_right_check_digit() {
        // The GB 11643 example number and one ending in X.
        assert!(is_resident_id("11010519491231002X"));
        assert!(is_resident_id("11010519491231002x"));
        assert!(is_resident_id("440524188001010014"));
        // One digit off: the check fails.
        assert!(!is_resident_id("440524188001010015"));
        assert!(!is_resident_id("110105194912310021"));
        assert!(!is_resident_id("44052418800101001"));
        assert!(!is_resident_id("4405241880010100144"));
        assert!(!is_resident_id("44052418800101001A"));
        assert!(!is_resident_id("４40524188001010014"));
    }

    #[test]
    fn mobiles_are_1_3_to_9_and_nine_digits() {
        for ok in [
            "13812345678",
            "19912345678",
            "+86 138-1234-5678",
            "8613812345678",
        ] {
            assert!(is_mobile(ok), "{ok}");
        }
        for bad in [
            "12812345678",
            "1381234567",
            "138123456789",
            "0871-2345678",
            "1381234567a",
        ] {
            assert!(!is_mobile(bad), "{bad}");
        }
    }

    #[test]
    fn names_are_two_to_four_han_characters() {
        for ok in ["张三", "段文旅", "欧阳明月"] {
            assert!(is_chinese_name(ok), "{ok}");
        }
        for bad in ["张", "欧阳明月亮", "张3", "Zhang San", "阿依古丽·买买提"] {
            assert!(!is_chinese_name(bad), "{bad}");
        }
    }

    #[test]
    fn other_detectors() {
        assert!(is_email("a.b@example.cn") && !is_email("a@b") && !is_email("a b@c.cn"));
        assert!(is_plate("云L12345") && is_plate("云L·D12345") && !is_plate("XL12345"));
        assert!(is_ip("192.168.1.10") && is_ip("::1") && !is_ip("192.168.1"));
        assert!(is_date("1990-01-31") && is_date("19900131") && !is_date("1990-13-01"));
        assert!(is_bank_card("4111111111111111"));
        assert!(!is_bank_card("4111111111111112"));
    }

    #[test]
    fn headers_hint_in_chinese_and_english() {
        let check = |h: &str, hint: Option<Hint>| assert_eq!(header_hint(h), hint, "{h}");
        check("身份证号", Some(Hint::Kind(ColumnKind::IdCard)));
        check("证件号码", Some(Hint::Kind(ColumnKind::IdCard)));
        check("手机", Some(Hint::Kind(ColumnKind::Phone)));
        check("联系电话", Some(Hint::Kind(ColumnKind::Phone)));
        check("姓名", Some(Hint::Kind(ColumnKind::Name)));
        check("guest_name", Some(Hint::Kind(ColumnKind::Name)));
        check("hotel_name", None);
        check("酒店名称", None);
        check("家庭地址", Some(Hint::Kind(ColumnKind::Address)));
        check("出生日期", Some(Hint::Kind(ColumnKind::BirthDate)));
        check("诊断结果", Some(Hint::Health));
        check("消费金额", Some(Hint::Money));
        check("spend_yuan", Some(Hint::Money));
        check("stay_id", Some(Hint::RecordKey));
        check("district", None);
    }
}

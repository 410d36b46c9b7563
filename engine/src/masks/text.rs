//! String masks, one value at a time into a reused buffer. Every function is total: any input,
//! however malformed, gives a masked value or `false` (null), never an error, so a mask cannot be
//! turned into an oracle on the value it hides. Lengths and positions count characters, not bytes
//! (names and addresses are multi-byte).

use erhai_policies::MaskArg;

pub(crate) const MASK: char = '*';

/// Every string mask has this shape: it writes the masked form of `value` into `out`; `false`
/// means "no meaningful result" (null).
#[cfg(test)]
type TextKernel = fn(&str, &[MaskArg], &mut String) -> bool;

fn int(args: &[MaskArg], i: usize) -> usize {
    match args.get(i) {
        Some(MaskArg::Int(v)) => usize::try_from(*v).unwrap_or(0),
        _ => 0,
    }
}

fn text(args: &[MaskArg], i: usize) -> &str {
    match args.get(i) {
        Some(MaskArg::Text(s)) => s,
        _ => "",
    }
}

const STARS: &str = "********************************";

fn stars(out: &mut String, mut n: usize) {
    while n > 0 {
        let k = n.min(STARS.len());
        out.push_str(&STARS[..k]);
        n -= k;
    }
}

/// Keeps the characters whose 0-based position satisfies `keep`, masks the others. If every
/// character would be kept, masks them all: a mask never returns its input unchanged.
fn keep_where(value: &str, out: &mut String, keep: impl Fn(usize, usize) -> bool) -> bool {
    let len = value.chars().count();
    if len > 0 && (0..len).all(|i| keep(i, len)) {
        stars(out, len);
        return true;
    }
    for (i, c) in value.chars().enumerate() {
        out.push(if keep(i, len) { c } else { MASK });
    }
    true
}

pub(crate) fn keep_first_n_last_m(value: &str, args: &[MaskArg], out: &mut String) -> bool {
    let (n, m) = (int(args, 0), int(args, 1));
    keep_where(value, out, |i, len| i < n || i + m >= len)
}

pub(crate) fn keep_from_x_to_y(value: &str, args: &[MaskArg], out: &mut String) -> bool {
    let (x, y) = (int(args, 0), int(args, 1));
    keep_where(value, out, |i, _| i + 1 >= x && i < y)
}

pub(crate) fn mask_first_n_last_m(value: &str, args: &[MaskArg], out: &mut String) -> bool {
    let (n, m) = (int(args, 0), int(args, 1));
    keep_where(value, out, |i, len| i >= n && i + m < len)
}

pub(crate) fn mask_from_x_to_y(value: &str, args: &[MaskArg], out: &mut String) -> bool {
    let (x, y) = (int(args, 0), int(args, 1));
    keep_where(value, out, |i, _| i + 1 < x || i >= y)
}

fn char_position(value: &str, c: &str) -> Option<usize> {
    let c = c.chars().next()?;
    value.chars().position(|v| v == c)
}

pub(crate) fn mask_before_char(value: &str, args: &[MaskArg], out: &mut String) -> bool {
    let at = char_position(value, text(args, 0));
    keep_where(value, out, |i, _| at.is_some_and(|p| i >= p))
}

pub(crate) fn mask_after_char(value: &str, args: &[MaskArg], out: &mut String) -> bool {
    let at = char_position(value, text(args, 0));
    keep_where(value, out, |i, _| at.is_some_and(|p| i <= p))
}

/// The digits of an 18- or 15-character resident ID number (the last of 18 may be `X`).
fn id_card(value: &str) -> Option<&[u8]> {
    let b = value.trim().as_bytes();
    let ok = match b.len() {
        18 => b[..17].iter().all(u8::is_ascii_digit) && matches!(b[17], b'0'..=b'9' | b'X' | b'x'),
        15 => b.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    ok.then_some(b)
}

pub(crate) fn mask_id_card(value: &str, args: &[MaskArg], out: &mut String) -> bool {
    let (first, last) = (int(args, 0), int(args, 1));
    // Fast path: a well-formed ID is ASCII, so bytes are characters.
    let b = value.as_bytes();
    if (b.len() == 18 || b.len() == 15) && b.is_ascii() && first + last < b.len() {
        out.push_str(&value[..first]);
        stars(out, b.len() - first - last);
        out.push_str(&value[b.len() - last..]);
        return true;
    }
    keep_where(value.trim(), out, |i, len| {
        len >= 15 && (i < first || i + last >= len)
    })
}

/// ISO 7064 MOD 11-2 check of an 18-digit ID; a 15-digit legacy ID has no check digit and is
/// valid when it is all digits.
pub(crate) fn id_card_valid(value: &str) -> Option<bool> {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let Some(b) = id_card(value) else {
        return Some(false);
    };
    if b.len() == 15 {
        return Some(true);
    }
    let sum: u32 = b[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    Some(CHECK[(sum % 11) as usize] == b[17].to_ascii_uppercase())
}

pub(crate) fn id_card_birth_year(value: &str) -> Option<i32> {
    let b = id_card(value)?;
    let digits = |r: std::ops::Range<usize>| {
        b[r].iter()
            .fold(0i32, |acc, d| acc * 10 + i32::from(d - b'0'))
    };
    Some(if b.len() == 18 {
        digits(6..10)
    } else {
        1900 + digits(6..8)
    })
}

pub(crate) fn id_card_region(value: &str, args: &[MaskArg], out: &mut String) -> bool {
    let Some(b) = id_card(value) else {
        return false;
    };
    let keep = if text(args, 0) == "province" { 2 } else { 4 };
    for (i, d) in b[..6].iter().enumerate() {
        out.push(if i < keep { char::from(*d) } else { '0' });
    }
    true
}

pub(crate) fn id_card_gender(value: &str, _: &[MaskArg], out: &mut String) -> bool {
    let Some(b) = id_card(value) else {
        return false;
    };
    let d = b[if b.len() == 18 { 16 } else { 14 }] - b'0';
    out.push(if d % 2 == 1 { '男' } else { '女' });
    true
}

pub(crate) fn mask_phone(value: &str, _: &[MaskArg], out: &mut String) -> bool {
    // Fast path: a bare 11-digit mobile number.
    let b = value.as_bytes();
    if b.len() == 11 && b[0] == b'1' && b.iter().all(u8::is_ascii_digit) {
        out.push_str(&value[..3]);
        out.push_str("****");
        out.push_str(&value[7..]);
        return true;
    }
    let v = value.trim();
    let digits = v.bytes().filter(u8::is_ascii_digit).count();
    let tail = v.get(v.len().saturating_sub(11)..).unwrap_or("");
    let is_mobile = tail.len() == 11
        && tail.starts_with('1')
        && tail.bytes().all(|b| b.is_ascii_digit())
        && matches!(
            v[..v.len() - 11].trim_end_matches([' ', '-']),
            "" | "+86" | "86" | "0086"
        );
    if is_mobile {
        let prefix = &v[..v.len() - 11];
        out.push_str(prefix);
        out.push_str(&tail[..3]);
        stars(out, 4);
        out.push_str(&tail[7..]);
        return true;
    }
    if v.starts_with('0') && digits >= 9 {
        // Landline: the area code (up to a separator, else 3 digits for 010/02x, 4 otherwise)
        // stays; the subscriber number keeps its last 2 digits.
        let area = match v.find(['-', ' ']) {
            Some(p) if p <= 4 => p + 1,
            _ if matches!(v.as_bytes().get(1), Some(b'1' | b'2')) => 3,
            _ => 4,
        };
        // Split by characters: the value may hold anything, not only digits.
        let at = v.char_indices().nth(area).map_or(v.len(), |(i, _)| i);
        let (head, rest) = v.split_at(at);
        out.push_str(head);
        let n = rest.chars().count();
        return keep_where(rest, out, |i, _| i + 2 >= n);
    }
    let n = v.chars().count();
    keep_where(v, out, |i, _| n > 4 && i + 2 >= n)
}

/// Compound surnames that keep two characters.
const COMPOUND_SURNAMES: [&str; 32] = [
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒",
    "夏侯", "轩辕", "令狐", "钟离", "端木", "独孤", "南宫", "西门", "百里", "呼延", "澹台", "公冶",
    "太史", "申屠", "赫连", "闻人", "万俟", "拓跋", "完颜", "第五",
];

/// First characters of the compound surnames, sorted (binary search).
const COMPOUND_FIRST: [char; 30] = [
    '万', '上', '东', '令', '公', '南', '司', '呼', '夏', '太', '宇', '完', '尉', '慕', '拓', '欧',
    '澹', '独', '申', '百', '皇', '端', '第', '西', '诸', '赫', '轩', '钟', '长', '闻',
];

pub(crate) fn mask_name(value: &str, _: &[MaskArg], out: &mut String) -> bool {
    let v = value.trim();
    // One pass over the characters: length, Latin letters, name-part separators.
    let (mut len, mut latin, mut parts) = (0usize, false, false);
    for c in v.chars() {
        len += 1;
        latin |= c.is_ascii_alphabetic();
        parts |= c == '·';
    }
    if latin {
        // Latin: each word keeps its initial.
        let mut word_start = true;
        for c in v.chars() {
            if c.is_alphabetic() {
                out.push(if word_start { c } else { MASK });
                word_start = false;
            } else {
                out.push(c);
                word_start = true;
            }
        }
        return true;
    }
    let first = v.chars().next().unwrap_or(' ');
    // Most names start with a character no compound surname starts with: skip the list.
    let compound = COMPOUND_FIRST.binary_search(&first).is_ok()
        && COMPOUND_SURNAMES.iter().any(|s| v.starts_with(s));
    let surname = if compound { 2 } else { 1 };
    // A value no longer than its surname keeps one character less: something is always masked.
    let keep = surname.min(len.saturating_sub(1));
    let cut = v.chars().take(keep).map(char::len_utf8).sum::<usize>();
    let (head, rest) = v.split_at(cut);
    out.push_str(head);
    if parts {
        // Names of several parts keep their separators.
        for c in rest.chars() {
            out.push(if c == '·' { c } else { MASK });
        }
    } else {
        stars(out, len - keep);
    }
    true
}

pub(crate) fn mask_bank_card(value: &str, _: &[MaskArg], out: &mut String) -> bool {
    let v = value.trim();
    let digits = v.chars().filter(char::is_ascii_digit).count();
    let mut seen = 0;
    for c in v.chars() {
        if c.is_ascii_digit() {
            let keep = digits > 8 && (seen < 4 || seen + 4 >= digits);
            out.push(if keep { c } else { MASK });
            seen += 1;
        } else {
            out.push(c);
        }
    }
    true
}

pub(crate) fn mask_email(value: &str, _: &[MaskArg], out: &mut String) -> bool {
    let v = value.trim();
    match v.rsplit_once('@') {
        Some((local, domain)) => {
            if let Some(c) = local.chars().next() {
                out.push(c);
            }
            stars(out, 3);
            out.push('@');
            out.push_str(domain);
        }
        None => stars(out, 3),
    }
    true
}

/// Keeps an address down to county level: province (省, 自治区, or a municipality's 市),
/// prefecture (市, 州, 盟, 地区), county (区, 县, 旗, 市). Stops early at the first sign of a
/// township or street (镇, 乡, 街, 路, 村, 号, a digit).
pub(crate) fn mask_address(value: &str, _: &[MaskArg], out: &mut String) -> bool {
    let v = value.trim();
    let mut kept_end = 0;
    let mut levels = 0;
    let mut prev = '\0';
    for (i, c) in v.char_indices() {
        if matches!(c, '镇' | '乡' | '街' | '路' | '村' | '号' | '道') || c.is_ascii_digit()
        {
            break;
        }
        let end = i + c.len_utf8();
        match c {
            '省' | '州' | '盟' | '市' => {
                kept_end = end;
                levels += 1;
            }
            '区' if prev == '治' || prev == '地' => {
                kept_end = end;
                levels += 1;
            }
            '区' | '县' | '旗' => {
                kept_end = end;
                break;
            }
            _ => {}
        }
        if levels == 3 {
            break;
        }
        prev = c;
    }
    out.push_str(&v[..kept_end]);
    if kept_end < v.len() || kept_end == 0 {
        stars(out, 3);
    }
    true
}

pub(crate) fn mask_plate(value: &str, _: &[MaskArg], out: &mut String) -> bool {
    keep_where(value.trim(), out, |i, len| {
        len >= 5 && (i < 2 || i + 1 == len)
    })
}

pub(crate) fn mask_ip(value: &str, _: &[MaskArg], out: &mut String) -> bool {
    let v = value.trim();
    if v.contains(':') {
        let mut groups = v.split(':').filter(|g| !g.is_empty());
        match (groups.next(), groups.next()) {
            (Some(a), Some(b)) => {
                out.push_str(a);
                out.push(':');
                out.push_str(b);
                out.push_str("::*");
            }
            _ => stars(out, 3),
        }
        return true;
    }
    let parts: Vec<&str> = v.split('.').collect();
    if parts.len() == 4 && parts.iter().all(|p| !p.is_empty() && p.len() <= 3) {
        out.push_str(parts[0]);
        out.push('.');
        out.push_str(parts[1]);
        out.push_str(".*.*");
    } else {
        stars(out, 3);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: TextKernel, value: &str, args: &[MaskArg]) -> Option<String> {
        let mut out = String::new();
        f(value, args, &mut out).then_some(out)
    }

    fn m(f: TextKernel, value: &str) -> String {
        run(f, value, &[]).expect("a value")
    }

    const I: fn(i64) -> MaskArg = MaskArg::Int;

    #[test]
    fn id_cards() {
        let id = "53290119900307123X";
        assert_eq!(
            run(mask_id_card, id, &[I(6), I(4)]).as_deref(),
            Some("532901********123X")
        );
        assert_eq!(
            run(mask_id_card, id, &[I(1), I(2)]).as_deref(),
            Some("5***************3X")
        );
        assert_eq!(
            run(mask_id_card, "532901900307123", &[I(6), I(4)]).as_deref(),
            Some("532901*****7123")
        );
        // Not an ID: nothing kept.
        assert_eq!(
            run(mask_id_card, "12345", &[I(6), I(4)]).as_deref(),
            Some("*****")
        );
        assert_eq!(id_card_valid("11010519491231002X"), Some(true));
        assert_eq!(id_card_valid("110105194912310021"), Some(false));
        assert_eq!(id_card_valid("abc"), Some(false));
        assert_eq!(id_card_birth_year("11010519491231002X"), Some(1949));
        assert_eq!(id_card_birth_year("110105491231002"), Some(1949));
        assert_eq!(id_card_birth_year("x"), None);
        let t = |s: &str| MaskArg::Text(s.into());
        assert_eq!(
            run(id_card_region, id, &[t("prefecture")]).as_deref(),
            Some("532900")
        );
        assert_eq!(
            run(id_card_region, id, &[t("province")]).as_deref(),
            Some("530000")
        );
        assert_eq!(m(id_card_gender, "11010519491231002X"), "女");
        assert_eq!(m(id_card_gender, "110105194912310011"), "男");
        assert_eq!(run(id_card_gender, "nope", &[]), None);
    }

    #[test]
    fn phones() {
        assert_eq!(m(mask_phone, "13812345678"), "138****5678");
        assert_eq!(m(mask_phone, "+86 13812345678"), "+86 138****5678");
        assert_eq!(m(mask_phone, "0872-2123456"), "0872-*****56");
        assert_eq!(m(mask_phone, "01012345678"), "010******78");
        assert_eq!(m(mask_phone, "0872212345678"), "0872*******78");
        assert_eq!(m(mask_phone, "123"), "***");
    }

    #[test]
    fn names() {
        assert_eq!(m(mask_name, "张三"), "张*");
        assert_eq!(m(mask_name, "李小龙"), "李**");
        assert_eq!(m(mask_name, "欧阳修"), "欧阳*");
        assert_eq!(m(mask_name, "司马相如"), "司马**");
        assert_eq!(m(mask_name, "欧阳"), "欧*");
        assert_eq!(m(mask_name, "张"), "*");
        assert_eq!(m(mask_name, "阿卜杜拉·买买提"), "阿***·***");
        assert_eq!(m(mask_name, "John Smith"), "J*** S****");
    }

    #[test]
    fn cards_emails_addresses_plates_ips() {
        assert_eq!(
            m(mask_bank_card, "6222 0212 3456 7890"),
            "6222 **** **** 7890"
        );
        assert_eq!(m(mask_bank_card, "12345678"), "********");
        assert_eq!(m(mask_email, "zhang.san@example.cn"), "z***@example.cn");
        assert_eq!(m(mask_email, "nonsense"), "***");
        assert_eq!(
            m(mask_address, "云南省大理白族自治州大理市下关镇建设路12号"),
            "云南省大理白族自治州大理市***"
        );
        assert_eq!(m(mask_address, "北京市朝阳区建国路1号"), "北京市朝阳区***");
        assert_eq!(
            m(mask_address, "广西壮族自治区南宁市青秀区民族大道"),
            "广西壮族自治区南宁市青秀区***"
        );
        assert_eq!(m(mask_address, "大理市"), "大理市");
        assert_eq!(m(mask_address, "某处"), "***");
        assert_eq!(m(mask_plate, "云L12345"), "云L****5");
        assert_eq!(m(mask_plate, "云LD12345"), "云L*****5");
        assert_eq!(m(mask_plate, "AB"), "**");
        assert_eq!(m(mask_ip, "192.168.10.20"), "192.168.*.*");
        assert_eq!(m(mask_ip, "2001:db8:85a3::8a2e:370:7334"), "2001:db8::*");
        assert_eq!(m(mask_ip, "host"), "***");
    }

    const ALL: [TextKernel; 18] = [
        mask_id_card,
        id_card_region,
        id_card_gender,
        mask_phone,
        mask_name,
        mask_bank_card,
        mask_email,
        mask_address,
        mask_plate,
        mask_ip,
        keep_first_n_last_m,
        keep_from_x_to_y,
        mask_first_n_last_m,
        mask_from_x_to_y,
        mask_before_char,
        mask_after_char,
        mask_id_card,
        mask_phone,
    ];

    /// Hostile and odd inputs: empty, blank, wrong lengths, mixed scripts, 4-byte UTF-8,
    /// separators where digits should be, a very long value.
    const ODD: [&str; 14] = [
        "",
        " ",
        "0",
        "0éé123456789",
        "𠀀𠀁𠀂𠀃𠀄𠀅𠀆𠀇𠀈𠀉𠀊𠀋𠀌𠀍𠀎𠀏𠀐𠀑",
        "😀😀😀😀😀😀😀😀😀😀😀",
        "张三abc李四",
        "13８12345678",
        "+8613812345678",
        "5329011990030712３X",
        "@@@",
        "云L·12345",
        "--------------",
        "\u{202e}13812345678",
    ];

    #[test]
    fn odd_inputs_never_panic_and_keep_utf8() {
        let args = [I(2), I(3)];
        let long = "长".repeat(10_000);
        for f in ALL {
            for v in ODD.iter().copied().chain([long.as_str()]) {
                let mut out = String::new();
                let _ = f(v, &args, &mut out);
                // Masks replace characters one for one or shorten; they never grow a value
                // beyond its length plus the fixed suffixes.
                assert!(
                    out.chars().count() <= v.chars().count() + 12,
                    "{v:?} → {out:?}"
                );
            }
        }
        assert_eq!(id_card_valid("𠀀"), Some(false));
        assert_eq!(id_card_birth_year("5329011990030712３X"), None);
    }

    #[test]
    fn generic_masks_never_return_the_input() {
        assert_eq!(
            run(keep_first_n_last_m, "abcdefgh", &[I(2), I(2)]).as_deref(),
            Some("ab****gh")
        );
        assert_eq!(
            run(keep_first_n_last_m, "abc", &[I(2), I(2)]).as_deref(),
            Some("***")
        );
        assert_eq!(
            run(keep_from_x_to_y, "abcdefgh", &[I(3), I(5)]).as_deref(),
            Some("**cde***")
        );
        assert_eq!(
            run(mask_first_n_last_m, "abcdefgh", &[I(2), I(3)]).as_deref(),
            Some("**cde***")
        );
        assert_eq!(
            run(mask_first_n_last_m, "abcdefgh", &[I(0), I(0)]).as_deref(),
            Some("********")
        );
        assert_eq!(
            run(mask_from_x_to_y, "abcdefgh", &[I(2), I(3)]).as_deref(),
            Some("a**defgh")
        );
        assert_eq!(
            run(mask_from_x_to_y, "ab", &[I(5), I(9)]).as_deref(),
            Some("**")
        );
        let at = [MaskArg::Text("@".into())];
        assert_eq!(
            run(mask_before_char, "li@x.cn", &at).as_deref(),
            Some("**@x.cn")
        );
        assert_eq!(
            run(mask_after_char, "li@x.cn", &at).as_deref(),
            Some("li@****")
        );
        assert_eq!(run(mask_after_char, "lixcn", &at).as_deref(), Some("*****"));
        assert_eq!(
            run(keep_first_n_last_m, "张三丰先生", &[I(1), I(1)]).as_deref(),
            Some("张***生")
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Any string, any mask: no panic, and generic masks never return their input (inputs
        /// without the mask character itself, which masking leaves as it is).
        #[test]
        fn masks_are_total(v in "[^*\\p{C}]{0,40}", n in 0i64..20, m in 0i64..20) {
            let args = [MaskArg::Int(n), MaskArg::Int(m)];
            for f in [mask_id_card, mask_phone, mask_name, mask_bank_card, mask_email,
                      mask_address, mask_plate, mask_ip, id_card_region, id_card_gender] {
                let mut out = String::new();
                let _ = f(&v, &args, &mut out);
            }
            for f in [keep_first_n_last_m, keep_from_x_to_y, mask_first_n_last_m, mask_from_x_to_y] {
                let mut out = String::new();
                f(&v, &args, &mut out);
                prop_assert!(v.is_empty() || out != v, "{v:?} unchanged");
                prop_assert_eq!(out.chars().count(), v.chars().count());
            }
            let _ = id_card_valid(&v);
            let _ = id_card_birth_year(&v);
        }
    }
}

#[cfg(test)]
mod compound {
    use super::*;

    #[test]
    fn first_characters_cover_every_compound_surname() {
        for s in COMPOUND_SURNAMES {
            let c = s.chars().next().expect("non-empty");
            assert!(COMPOUND_FIRST.binary_search(&c).is_ok(), "{s}");
        }
        assert!(COMPOUND_FIRST.windows(2).all(|w| w[0] < w[1]), "sorted");
    }
}

//! The periodic report as a document: Markdown, or a standalone HTML page (embedded CSS, charts
//! drawn here as inline SVG, no script and nothing fetched from elsewhere). Both show the same
//! figures as `--output json`, laid out so that every total sits above the parts it sums.

use erhai_proto::json::utc as time;
use erhai_proto::v1 as pb;

use crate::lang::Lang;

/// One line of the figures: its depth under the total it belongs to, label and value.
struct Figure {
    depth: usize,
    label: &'static str,
    value: String,
}

fn fig(depth: usize, label: &'static str, value: impl ToString) -> Figure {
    Figure {
        depth,
        label,
        value: value.to_string(),
    }
}

/// The figures, each total followed by its parts.
fn figures(r: &pb::Report, lang: Lang) -> Vec<Figure> {
    let t = |en, zh| lang.pick(en, zh);
    vec![
        fig(
            0,
            t("production queries submitted", "提交的生产查询"),
            r.production_queries,
        ),
        fig(
            1,
            t("refused before running", "运行前被拒绝"),
            r.production_refused,
        ),
        fig(
            1,
            t(
                "ended before the plan check decided",
                "计划检查未作结论即终止",
            ),
            r.production_invalid,
        ),
        fig(1, t("accepted and run", "通过检查并运行"), r.production_run),
        fig(2, t("released", "已审核放行"), r.run_released),
        fig(
            2,
            t("rejected or closed by a reviewer", "被审核员驳回或关闭"),
            r.rejected,
        ),
        fig(2, t("awaiting review", "待审核"), r.run_awaiting),
        fig(
            0,
            t(
                "development queries (samples, not counted above)",
                "开发查询（样本数据，不计入以上各项）",
            ),
            r.dev_queries,
        ),
        fig(
            0,
            t(
                "results released in the period (by approval date)",
                "本期放行的结果（按批准日期）",
            ),
            r.releases,
        ),
        fig(1, t("rows released", "放行行数"), r.rows_released),
        fig(
            1,
            t("rows withheld at approval", "批准时扣留的行数"),
            r.rows_withheld,
        ),
        fig(
            0,
            t("data-quality requests filed", "提出的数据质量问题"),
            r.quality_filed,
        ),
        fig(
            0,
            t("data-quality requests closed", "已办结的数据质量问题"),
            r.quality_closed,
        ),
        fig(
            0,
            t("queries reading social data", "读取社会数据的查询"),
            r.social_queries,
        ),
    ]
}

fn header(r: &pb::Report, lang: Lang) -> String {
    let by = r.generated_by.join(", ");
    match lang {
        Lang::En => format!(
            "Period {} to {}. Agreement: {} (status {}). Generated {} by {by}.",
            r.from,
            r.to,
            r.agreement,
            r.status,
            time(r.generated_at_ms),
        ),
        Lang::Zh => format!(
            "报告期：{} 至 {}。运营协议：{}（状态：{}）。由 {by} 于 {} 生成。",
            r.from,
            r.to,
            r.agreement,
            r.status,
            time(r.generated_at_ms),
        ),
    }
}

/// The document's title.
fn title(r: &pb::Report, lang: Lang) -> String {
    format!(
        "{} — {}",
        lang.pick("Periodic report", "定期报告"),
        r.tenant
    )
}

/// A tenant's report as Markdown.
pub fn report_markdown(r: &pb::Report, lang: Lang) -> String {
    let t = |en, zh| lang.pick(en, zh);
    let none = t("None in the period.", "本期无。");
    let mut s = format!(
        "# {}\n\n{}\n\n## {}\n\n| | |\n| --- | ---: |\n",
        title(r, lang),
        header(r, lang),
        t("Figures", "主要数据"),
    );
    for f in figures(r, lang) {
        let indent = "\u{00a0}\u{00a0}\u{00a0}\u{00a0}".repeat(f.depth);
        s += &format!("| {indent}{} | {} |\n", f.label, f.value);
    }
    s += t(
        "\n## Queries per week\n\n| week (Monday) | production | development |\n| --- | ---: | ---: |\n",
        "\n## 每周查询量\n\n| 周（以周一计） | 生产 | 开发 |\n| --- | ---: | ---: |\n",
    );
    for w in &r.weeks {
        s += &format!("| {} | {} | {} |\n", w.week, w.production, w.dev);
    }
    s += t("\n## Refusals by rule\n\n", "\n## 按规则统计的拒绝\n\n");
    if r.refusals_by_rule.is_empty() {
        s += none;
        s += "\n";
    } else {
        s += t(
            "| rule | queries |\n| --- | ---: |\n",
            "| 规则 | 查询数 |\n| --- | ---: |\n",
        );
        for c in &r.refusals_by_rule {
            s += &format!("| {} | {} |\n", c.rule, c.count);
        }
    }
    s += &format!(
        "\n## {}\n\n{}.\n",
        t("Social data", "社会数据"),
        r.social_data
    );
    if !r.social_datasets.is_empty() {
        s += t(
            "\n| dataset | rows | import | uploaded | approved | scenarios |\n| --- | ---: | --- | --- | --- | --- |\n",
            "\n| 数据集 | 行数 | 导入状态 | 上传时间 | 批准时间 | 应用场景 |\n| --- | ---: | --- | --- | --- | --- |\n",
        );
        for d in &r.social_datasets {
            s += &format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                d.name,
                d.rows,
                d.import_status,
                time(d.uploaded_at_ms),
                time(d.approved_at_ms),
                d.scenarios.join(", ")
            );
        }
    }
    s += t("\n## Data authorized\n\n", "\n## 授权使用的数据\n\n");
    for d in &r.datasets_authorized {
        s += &format!("- {d}\n");
    }
    s += t(
        "\n## Scenarios\n\n| scenario | domain | status | valid | title |\n| --- | --- | --- | --- | --- |\n",
        "\n## 应用场景\n\n| 场景 | 领域 | 状态 | 有效期 | 名称 |\n| --- | --- | --- | --- | --- |\n",
    );
    for sc in &r.scenarios {
        s += &format!(
            "| {} | {} | {} | {} {} {} | {} |\n",
            sc.name,
            sc.domain,
            sc.status,
            sc.valid_from,
            t("to", "至"),
            sc.valid_to,
            sc.title
        );
    }
    s += t(
        "\n## Violations and rectifications\n\n",
        "\n## 违规与整改\n\n",
    );
    if r.violations.is_empty() {
        s += none;
        s += "\n";
    }
    for v in &r.violations {
        s += &format!("- {}\n", violation(v, lang));
    }
    s
}

/// One violation or rectification event as a sentence.
fn violation(v: &pb::TenantEvent, lang: Lang) -> String {
    match lang {
        Lang::En => format!("{} {} by {}: {}", time(v.at_ms), v.what, v.by, v.reason),
        Lang::Zh => format!("{} {}（{}）：{}", time(v.at_ms), v.what, v.by, v.reason),
    }
}

/// Text as HTML (and SVG) character data or an attribute value.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI','PingFang SC','Noto Sans CJK SC',sans-serif;\
margin:0;background:#f4f6f8;color:#1d2a35;line-height:1.5}\
main{max-width:920px;margin:2rem auto;padding:2rem 2.5rem;background:#fff;border-radius:8px;\
box-shadow:0 1px 4px rgba(0,0,0,.08)}\
h1{font-size:1.6rem;margin:0 0 .3rem;color:#0b4f6c}\
h2{font-size:1.15rem;margin:2rem 0 .6rem;padding-bottom:.25rem;border-bottom:2px solid #e3e8ec;\
color:#0b4f6c}\
p.meta{color:#5b6b78;margin:0}\
table{border-collapse:collapse;width:100%;font-size:.93rem}\
th,td{padding:.35rem .6rem;border-bottom:1px solid #e3e8ec;text-align:left;vertical-align:top}\
td.n{text-align:right;font-variant-numeric:tabular-nums}\
tr.d0 th{font-weight:600}tr.d1 th{font-weight:400;padding-left:1.8rem}\
tr.d2 th{font-weight:400;padding-left:3.4rem;color:#415361}\
figure{margin:.5rem 0}svg text{font-family:inherit;font-size:11px;fill:#415361}\
figcaption{font-size:.85rem;color:#5b6b78}ul{padding-left:1.2rem}";

/// Queries per week as stacked bars (production below, development above).
fn week_chart(weeks: &[pb::WeekCount], lang: Lang) -> String {
    let t = |en, zh| lang.pick(en, zh);
    let (title, prod, dev) = (
        t("Queries per week", "每周查询量"),
        t("production", "生产"),
        t("development", "开发"),
    );
    let n = weeks.len().max(1);
    let max = weeks
        .iter()
        .map(|w| w.production + w.dev)
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = (760.0 / n as f64).clamp(6.0, 56.0);
    let (left, top, h) = (44.0, 24.0, 170.0);
    let width = left + slot * n as f64 + 16.0;
    let height = top + h + 44.0;
    let every = n.div_ceil(12);
    let mut s = format!(
        "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-label=\"{title}\">\
         <title>{title}</title>\
         <rect fill=\"#0b6e99\" x=\"{left}\" y=\"4\" width=\"10\" height=\"10\"/>\
         <text x=\"{:.0}\" y=\"13\">{prod}</text>\
         <rect fill=\"#9ccbe0\" x=\"{:.0}\" y=\"4\" width=\"10\" height=\"10\"/>\
         <text x=\"{:.0}\" y=\"13\">{dev}</text>\
         <line stroke=\"#9aa8b3\" x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{:.0}\"/>\
         <line stroke=\"#9aa8b3\" x1=\"{left}\" y1=\"{:.0}\" x2=\"{:.0}\" y2=\"{:.0}\"/>\
         <text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{max}</text>\
         <text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">0</text>",
        left + 14.0,
        left + 100.0,
        left + 114.0,
        top + h,
        top + h,
        width - 8.0,
        top + h,
        left - 6.0,
        top + 4.0,
        left - 6.0,
        top + h,
    );
    for (i, w) in weeks.iter().enumerate() {
        let x = left + slot * i as f64 + slot * 0.15;
        let bw = slot * 0.7;
        let ph = h * w.production as f64 / max as f64;
        let dh = h * w.dev as f64 / max as f64;
        let tip = html_escape(&match lang {
            Lang::En => format!(
                "week of {}: {} production, {} development",
                w.week, w.production, w.dev
            ),
            Lang::Zh => format!("{} 当周：生产 {}，开发 {}", w.week, w.production, w.dev),
        });
        s += &format!(
            "<g><title>{tip}</title>\
             <rect fill=\"#0b6e99\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{ph:.1}\"/>\
             <rect fill=\"#9ccbe0\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{dh:.1}\"/></g>",
            top + h - ph,
            top + h - ph - dh,
        );
        if i % every == 0 {
            s += &format!(
                "<text x=\"{:.1}\" y=\"{:.0}\" text-anchor=\"middle\">{}</text>",
                x + bw / 2.0,
                top + h + 16.0,
                html_escape(w.week.get(5..).unwrap_or(&w.week))
            );
        }
    }
    s + "</svg><figcaption>"
        + t(
            "Each bar is a week, Monday to Sunday, labelled by its Monday.",
            "每根柱代表一周（周一至周日），以该周周一的日期标注。",
        )
        + "</figcaption></figure>\n"
}

/// Refused production queries by rule, as horizontal bars.
fn refusal_chart(rules: &[pb::RuleCount], lang: Lang) -> String {
    let t = |en, zh| lang.pick(en, zh);
    let title = t("Refusals by rule", "按规则统计的拒绝");
    if rules.is_empty() {
        return format!(
            "<p>{}</p>\n",
            t("No refusals in the period.", "本期没有被拒绝的查询。")
        );
    }
    let max = rules.iter().map(|r| r.count).max().unwrap_or(0).max(1);
    let (label_w, bar_w, row_h) = (260.0, 420.0, 24.0);
    let width = label_w + bar_w + 60.0;
    let height = row_h * rules.len() as f64 + 8.0;
    let mut s = format!(
        "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-label=\"{title}\">\
         <title>{title}</title>"
    );
    for (i, r) in rules.iter().enumerate() {
        let y = row_h * i as f64 + 4.0;
        let w = (bar_w * r.count as f64 / max as f64).max(1.0);
        let rule = html_escape(&r.rule);
        s += &format!(
            "<text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{rule}</text>\
             <rect fill=\"#c4572f\" x=\"{label_w}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\"><title>{rule}: {}</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            label_w - 8.0,
            y + row_h * 0.62,
            row_h * 0.7,
            r.count,
            label_w + w + 6.0,
            y + row_h * 0.62,
            r.count
        );
    }
    s + "</svg><figcaption>"
        + t(
            "Each refused query counts once, under the first rule that refused it.",
            "每个被拒绝的查询只计一次，计入首先拒绝它的规则。",
        )
        + "</figcaption></figure>\n"
}

/// A tenant's report as a standalone HTML page.
pub fn report_html(r: &pb::Report, lang: Lang) -> String {
    let e = |s: &str| html_escape(s);
    let t = |en, zh| lang.pick(en, zh);
    let title = e(&title(r, lang));
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{CSS}</style></head><body><main>\n\
         <h1>{title}</h1>\n<p class=\"meta\">{}</p>\n<h2>{}</h2>\n<table>\n",
        lang.html(),
        e(&header(r, lang)),
        t("Figures", "主要数据"),
    );
    for f in figures(r, lang) {
        s += &format!(
            "<tr class=\"d{}\"><th>{}</th><td class=\"n\">{}</td></tr>\n",
            f.depth,
            e(f.label),
            e(&f.value)
        );
    }
    s += t(
        "</table>\n<h2>Queries per week</h2>\n",
        "</table>\n<h2>每周查询量</h2>\n",
    );
    s += &week_chart(&r.weeks, lang);
    s += t("<h2>Refusals by rule</h2>\n", "<h2>按规则统计的拒绝</h2>\n");
    s += &refusal_chart(&r.refusals_by_rule, lang);
    s += &format!(
        "<h2>{}</h2>\n<p>{}.</p>\n",
        t("Social data", "社会数据"),
        e(&r.social_data)
    );
    if !r.social_datasets.is_empty() {
        s += t(
            "<table>\n<tr><th>dataset</th><th>rows</th><th>import</th><th>uploaded</th><th>approved</th><th>scenarios</th></tr>\n",
            "<table>\n<tr><th>数据集</th><th>行数</th><th>导入状态</th><th>上传时间</th><th>批准时间</th><th>应用场景</th></tr>\n",
        );
        for d in &r.social_datasets {
            s += &format!(
                "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                e(&d.name),
                d.rows,
                e(&d.import_status),
                e(&time(d.uploaded_at_ms)),
                e(&time(d.approved_at_ms)),
                e(&d.scenarios.join(", "))
            );
        }
        s += "</table>\n";
    }
    s += t(
        "<h2>Data authorized</h2>\n<ul>\n",
        "<h2>授权使用的数据</h2>\n<ul>\n",
    );
    for d in &r.datasets_authorized {
        s += &format!("<li>{}</li>\n", e(d));
    }
    s += t(
        "</ul>\n<h2>Scenarios</h2>\n<table>\n<tr><th>scenario</th><th>domain</th><th>status</th><th>valid</th><th>title</th></tr>\n",
        "</ul>\n<h2>应用场景</h2>\n<table>\n<tr><th>场景</th><th>领域</th><th>状态</th><th>有效期</th><th>名称</th></tr>\n",
    );
    for sc in &r.scenarios {
        s += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} {} {}</td><td>{}</td></tr>\n",
            e(&sc.name),
            e(&sc.domain),
            e(&sc.status),
            e(&sc.valid_from),
            t("to", "至"),
            e(&sc.valid_to),
            e(&sc.title)
        );
    }
    s += t(
        "</table>\n<h2>Violations and rectifications</h2>\n",
        "</table>\n<h2>违规与整改</h2>\n",
    );
    if r.violations.is_empty() {
        s += &format!("<p>{}</p>\n", t("None in the period.", "本期无。"));
    } else {
        s += "<ul>\n";
        for v in &r.violations {
            s += &format!("<li>{}</li>\n", e(&violation(v, lang)));
        }
        s += "</ul>\n";
    }
    s + "</main></body></html>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> pb::Report {
        pb::Report {
            tenant: "t<script>".into(),
            production_queries: 5,
            production_refused: 2,
            production_run: 3,
            run_released: 1,
            rejected: 1,
            run_awaiting: 1,
            dev_queries: 4,
            weeks: vec![
                pb::WeekCount {
                    week: "2026-03-02".into(),
                    production: 5,
                    dev: 4,
                },
                pb::WeekCount {
                    week: "2026-03-09".into(),
                    production: 0,
                    dev: 0,
                },
            ],
            refusals_by_rule: vec![pb::RuleCount {
                rule: "raw-output <b>".into(),
                count: 2,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn the_html_page_is_self_contained_escaped_and_charts_every_week_and_rule() {
        let html = report_html(&report(), Lang::En);
        assert!(html.contains("<style>") && html.contains("<svg"));
        for banned in ["<script", "src=", "href=", "@import", "url("] {
            assert!(!html.contains(banned), "{banned} in the page");
        }
        assert!(html.contains("t&lt;script&gt;"));
        assert!(html.contains("raw-output &lt;b&gt;"));
        // One group of bars per week, one bar per rule.
        assert_eq!(html.matches("<g><title>week of").count(), 2);
        assert_eq!(html.matches("<rect fill=\"#c4572f\"").count(), 1);
        assert!(html.contains("<td class=\"n\">5</td>"));
    }

    #[test]
    fn markdown_states_the_same_figures_with_parts_under_their_totals() {
        let md = report_markdown(&report(), Lang::En);
        let at = |label: &str| md.find(label).unwrap_or_else(|| panic!("{label} in {md}"));
        assert!(at("production queries submitted") < at("refused before running"));
        assert!(at("accepted and run") < at("awaiting review"));
        assert!(md.contains("| 2026-03-02 | 5 | 4 |"));
        assert!(md.contains("| raw-output <b> | 2 |"));
    }

    /// `--lang zh`: the same figures, rule names and escaping under Chinese labels, and no
    /// English heading left over.
    #[test]
    fn the_chinese_report_states_the_same_figures() {
        let (en_md, zh_md) = (
            report_markdown(&report(), Lang::En),
            report_markdown(&report(), Lang::Zh),
        );
        let numbers = |s: &str| -> Vec<String> {
            s.split(|c: char| !c.is_ascii_digit())
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect()
        };
        assert_eq!(numbers(&en_md), numbers(&zh_md));
        assert!(zh_md.contains("# 定期报告") && zh_md.contains("提交的生产查询"));
        assert!(zh_md.contains("| raw-output <b> | 2 |"), "rule names stay");
        for english in [
            "Figures",
            "Queries per week",
            "Scenarios",
            "None in the period",
        ] {
            assert!(!zh_md.contains(english), "{english} in {zh_md}");
        }
        let html = report_html(&report(), Lang::Zh);
        assert!(html.contains("<html lang=\"zh-CN\">") && html.contains("每周查询量"));
        assert!(html.contains("t&lt;script&gt;"));
        assert_eq!(html.matches("当周").count(), 2);
        assert!(report_html(&report(), Lang::En).contains("<html lang=\"en\">"));
    }
}

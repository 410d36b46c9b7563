//! The periodic report as a document: Markdown, or a standalone HTML page (embedded CSS, charts
//! drawn here as inline SVG, no script and nothing fetched from elsewhere). Both show the same
//! figures as `--output json`, laid out so that every total sits above the parts it sums.

use erhai_proto::json::utc as time;
use erhai_proto::v1 as pb;

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
fn figures(r: &pb::Report) -> Vec<Figure> {
    vec![
        fig(0, "production queries submitted", r.production_queries),
        fig(1, "refused before running", r.production_refused),
        fig(
            1,
            "ended before the plan check decided",
            r.production_invalid,
        ),
        fig(1, "accepted and run", r.production_run),
        fig(2, "released", r.run_released),
        fig(2, "rejected or closed by a reviewer", r.rejected),
        fig(2, "awaiting review", r.run_awaiting),
        fig(
            0,
            "development queries (samples, not counted above)",
            r.dev_queries,
        ),
        fig(
            0,
            "results released in the period (by approval date)",
            r.releases,
        ),
        fig(1, "rows released", r.rows_released),
        fig(1, "rows withheld at approval", r.rows_withheld),
        fig(0, "data-quality requests filed", r.quality_filed),
        fig(0, "data-quality requests closed", r.quality_closed),
        fig(0, "queries reading social data", r.social_queries),
    ]
}

fn header(r: &pb::Report) -> String {
    format!(
        "Period {} to {}. Agreement: {} (status {}). Generated {} by {}.",
        r.from,
        r.to,
        r.agreement,
        r.status,
        time(r.generated_at_ms),
        r.generated_by.join(", ")
    )
}

/// A tenant's report as Markdown.
pub fn report_markdown(r: &pb::Report) -> String {
    let mut s = format!(
        "# Periodic report — {}\n\n{}\n\n## Figures\n\n| | |\n| --- | ---: |\n",
        r.tenant,
        header(r)
    );
    for f in figures(r) {
        let indent = "\u{00a0}\u{00a0}\u{00a0}\u{00a0}".repeat(f.depth);
        s += &format!("| {indent}{} | {} |\n", f.label, f.value);
    }
    s += "\n## Queries per week\n\n| week (Monday) | production | development |\n| --- | ---: | ---: |\n";
    for w in &r.weeks {
        s += &format!("| {} | {} | {} |\n", w.week, w.production, w.dev);
    }
    s += "\n## Refusals by rule\n\n";
    if r.refusals_by_rule.is_empty() {
        s += "None in the period.\n";
    } else {
        s += "| rule | queries |\n| --- | ---: |\n";
        for c in &r.refusals_by_rule {
            s += &format!("| {} | {} |\n", c.rule, c.count);
        }
    }
    s += &format!("\n## Social data\n\n{}.\n", r.social_data);
    if !r.social_datasets.is_empty() {
        s += "\n| dataset | rows | import | uploaded | approved | scenarios |\n| --- | ---: | --- | --- | --- | --- |\n";
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
    s += "\n## Data authorized\n\n";
    for d in &r.datasets_authorized {
        s += &format!("- {d}\n");
    }
    s += "\n## Scenarios\n\n| scenario | domain | status | valid | title |\n| --- | --- | --- | --- | --- |\n";
    for sc in &r.scenarios {
        s += &format!(
            "| {} | {} | {} | {} to {} | {} |\n",
            sc.name, sc.domain, sc.status, sc.valid_from, sc.valid_to, sc.title
        );
    }
    s += "\n## Violations and rectifications\n\n";
    if r.violations.is_empty() {
        s += "None in the period.\n";
    }
    for v in &r.violations {
        s += &format!("- {} {} by {}: {}\n", time(v.at_ms), v.what, v.by, v.reason);
    }
    s
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
fn week_chart(weeks: &[pb::WeekCount]) -> String {
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
         viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-label=\"queries per week\">\
         <title>Queries per week</title>\
         <rect fill=\"#0b6e99\" x=\"{left}\" y=\"4\" width=\"10\" height=\"10\"/>\
         <text x=\"{:.0}\" y=\"13\">production</text>\
         <rect fill=\"#9ccbe0\" x=\"{:.0}\" y=\"4\" width=\"10\" height=\"10\"/>\
         <text x=\"{:.0}\" y=\"13\">development</text>\
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
        let tip = html_escape(&format!(
            "week of {}: {} production, {} development",
            w.week, w.production, w.dev
        ));
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
    s + "</svg><figcaption>Each bar is a week, Monday to Sunday, labelled by its Monday.</figcaption></figure>\n"
}

/// Refused production queries by rule, as horizontal bars.
fn refusal_chart(rules: &[pb::RuleCount]) -> String {
    if rules.is_empty() {
        return "<p>No refusals in the period.</p>\n".into();
    }
    let max = rules.iter().map(|r| r.count).max().unwrap_or(0).max(1);
    let (label_w, bar_w, row_h) = (260.0, 420.0, 24.0);
    let width = label_w + bar_w + 60.0;
    let height = row_h * rules.len() as f64 + 8.0;
    let mut s = format!(
        "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-label=\"refusals by rule\">\
         <title>Refusals by rule</title>"
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
    s + "</svg><figcaption>Each refused query counts once, under the first rule that refused it.</figcaption></figure>\n"
}

/// A tenant's report as a standalone HTML page.
pub fn report_html(r: &pb::Report) -> String {
    let e = |s: &str| html_escape(s);
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"zh\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Periodic report — {}</title><style>{CSS}</style></head><body><main>\n\
         <h1>Periodic report — {}</h1>\n<p class=\"meta\">{}</p>\n<h2>Figures</h2>\n<table>\n",
        e(&r.tenant),
        e(&r.tenant),
        e(&header(r)),
    );
    for f in figures(r) {
        s += &format!(
            "<tr class=\"d{}\"><th>{}</th><td class=\"n\">{}</td></tr>\n",
            f.depth,
            e(f.label),
            e(&f.value)
        );
    }
    s += "</table>\n<h2>Queries per week</h2>\n";
    s += &week_chart(&r.weeks);
    s += "<h2>Refusals by rule</h2>\n";
    s += &refusal_chart(&r.refusals_by_rule);
    s += &format!("<h2>Social data</h2>\n<p>{}.</p>\n", e(&r.social_data));
    if !r.social_datasets.is_empty() {
        s += "<table>\n<tr><th>dataset</th><th>rows</th><th>import</th><th>uploaded</th><th>approved</th><th>scenarios</th></tr>\n";
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
    s += "<h2>Data authorized</h2>\n<ul>\n";
    for d in &r.datasets_authorized {
        s += &format!("<li>{}</li>\n", e(d));
    }
    s += "</ul>\n<h2>Scenarios</h2>\n<table>\n<tr><th>scenario</th><th>domain</th><th>status</th><th>valid</th><th>title</th></tr>\n";
    for sc in &r.scenarios {
        s += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} to {}</td><td>{}</td></tr>\n",
            e(&sc.name),
            e(&sc.domain),
            e(&sc.status),
            e(&sc.valid_from),
            e(&sc.valid_to),
            e(&sc.title)
        );
    }
    s += "</table>\n<h2>Violations and rectifications</h2>\n";
    if r.violations.is_empty() {
        s += "<p>None in the period.</p>\n";
    } else {
        s += "<ul>\n";
        for v in &r.violations {
            s += &format!(
                "<li>{} {} by {}: {}</li>\n",
                e(&time(v.at_ms)),
                e(&v.what),
                e(&v.by),
                e(&v.reason)
            );
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
        let html = report_html(&report());
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
        let md = report_markdown(&report());
        let at = |label: &str| md.find(label).unwrap_or_else(|| panic!("{label} in {md}"));
        assert!(at("production queries submitted") < at("refused before running"));
        assert!(at("accepted and run") < at("awaiting review"));
        assert!(md.contains("| 2026-03-02 | 5 | 4 |"));
        assert!(md.contains("| raw-output <b> | 2 |"));
    }
}

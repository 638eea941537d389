//! The console's words, numbers, times and charts, in the reader's language,
//! and the frame every page sits in.

use maud::{html, Markup, DOCTYPE};

/// The language of a page: Chinese (the default) or English. A page is in
/// one language from its `<html lang>` to its footer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum Ui {
    /// 中文.
    #[default]
    Zh,
    /// English.
    En,
}

impl Ui {
    /// `zh` or `en` (the query value and the cookie).
    pub(crate) fn code(self) -> &'static str {
        match self {
            Ui::Zh => "zh",
            Ui::En => "en",
        }
    }

    /// Parses `zh` or `en`.
    pub(crate) fn parse(s: &str) -> Option<Ui> {
        match s {
            "zh" => Some(Ui::Zh),
            "en" => Some(Ui::En),
            _ => None,
        }
    }

    /// The BCP 47 tag for `<html lang>`.
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Ui::Zh => "zh-CN",
            Ui::En => "en",
        }
    }

    /// The other language.
    pub(crate) fn other(self) -> Ui {
        match self {
            Ui::Zh => Ui::En,
            Ui::En => Ui::Zh,
        }
    }

    /// One of two texts: every word on a page goes through here.
    pub(crate) fn t(self, zh: &'static str, en: &'static str) -> &'static str {
        match self {
            Ui::Zh => zh,
            Ui::En => en,
        }
    }

    /// A whole number with thousands separators (both languages write 1,234,567 in figures).
    pub(crate) fn num(self, n: u64) -> String {
        let digits = n.to_string();
        let mut out = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    }

    /// An amount in fen as yuan: `¥1,234.56`.
    pub(crate) fn money(self, fen: u64) -> String {
        format!("¥{}.{:02}", self.num(fen / 100), fen % 100)
    }

    /// A time (RFC 3339) in the platform's time zone: `2026年11月11日 08:00` or
    /// `11 Nov 2026, 08:00`; text that is not a time is shown as it is.
    pub(crate) fn time(self, rfc3339: &str, tz: chrono::FixedOffset) -> String {
        match chrono::DateTime::parse_from_rfc3339(rfc3339) {
            Ok(t) => {
                let t = t.with_timezone(&tz);
                match self {
                    Ui::Zh => t.format("%Y年%-m月%-d日 %H:%M").to_string(),
                    Ui::En => t.format("%-d %b %Y, %H:%M").to_string(),
                }
            }
            Err(_) => rfc3339.to_owned(),
        }
    }

    /// A day: `11月11日` or `11 Nov`.
    pub(crate) fn day(self, d: chrono::NaiveDate) -> String {
        match self {
            Ui::Zh => d.format("%-m月%-d日").to_string(),
            Ui::En => d.format("%-d %b").to_string(),
        }
    }

    /// A severity's word.
    pub(crate) fn severity(self, s: &str) -> &'static str {
        match s {
            "high" => self.t("高", "high"),
            "medium" => self.t("中", "medium"),
            "low" => self.t("低", "low"),
            _ => self.t("未知", "unknown"),
        }
    }

    /// Yes or no.
    pub(crate) fn yes_no(self, b: bool) -> &'static str {
        if b {
            self.t("是", "yes")
        } else {
            self.t("否", "no")
        }
    }
}

/// The platform's time zone as the console shows it: `UTC+08:00`.
pub(crate) fn zone_name(tz: chrono::FixedOffset) -> String {
    format!("UTC{tz}")
}

/// One entry of the navigation.
pub(crate) struct NavItem {
    /// Where it goes.
    pub href: String,
    /// What it says.
    pub label: &'static str,
}

/// What the frame around a page needs.
pub(crate) struct Frame<'a> {
    /// The language.
    pub ui: Ui,
    /// The page's title (also its `<h1>`).
    pub title: &'a str,
    /// The navigation for the reader's role.
    pub nav: Vec<NavItem>,
    /// The current path, to mark the current entry.
    pub path: &'a str,
    /// The link that shows this page in the other language.
    pub switch_href: String,
    /// Who is signed in, as the header says it (`None`: nobody).
    pub who: Option<String>,
    /// The form token, for the sign-out button.
    pub csrf: &'a str,
    /// The platform's time zone, named in the footer.
    pub tz: chrono::FixedOffset,
}

/// The whole page: head, header with navigation and language switch, the
/// page's content in `<main>`, footer.
pub(crate) fn frame(f: &Frame<'_>, content: Markup) -> Markup {
    let ui = f.ui;
    let other = ui.other();
    html! {
        (DOCTYPE)
        html lang=(ui.tag()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // A title or heading names an id, which may hold characters that
                // reorder or hide text: they are shown as escapes there.
                title { (weiquan_events::visible(f.title)) " · " (ui.t("维权", "weiquan")) }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/console.js" defer {}
            }
            body {
                a class="skip" href="#main" { (ui.t("跳到正文", "Skip to content")) }
                header class="top" {
                    a class="brand" href="/" { (ui.t("维权 · 消费者权益监测", "weiquan · consumer protection")) }
                    nav aria-label=(ui.t("主导航", "Main")) {
                        ul {
                            @for item in &f.nav {
                                li {
                                    @if item.href == f.path {
                                        a href=(item.href) aria-current="page" { (item.label) }
                                    } @else {
                                        a href=(item.href) { (item.label) }
                                    }
                                }
                            }
                        }
                    }
                    div class="account" {
                        a class="lang" href=(f.switch_href) lang=(other.tag()) hreflang=(other.tag()) {
                            (other.t("中文", "English"))
                        }
                        @match &f.who {
                            Some(who) => {
                                span class="who" { (who) }
                                form method="post" action="/signout" class="inline" {
                                    input type="hidden" name="csrf" value=(f.csrf);
                                    button type="submit" { (ui.t("退出", "Sign out")) }
                                }
                            }
                            None => a href="/signin" { (ui.t("登录", "Sign in")) },
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (weiquan_events::visible(f.title)) }
                    (content)
                }
                footer {
                    p {
                        (ui.t("时间均为平台时区（", "Times are in the platform's time zone (")) (zone_name(f.tz)) (ui.t("）。", "). "))
                        (ui.t("每条事件与结论都记入防篡改日志，可离线验证。", "Every event and finding is in a tamper-evident log that can be verified offline."))
                        " " a href="/log" { (ui.t("如何验证", "How to verify")) }
                    }
                }
            }
        }
    }
}

/// Colours of the chart series: distinguishable, and each at least 3:1
/// against the white background (WCAG 1.4.11 for graphics).
const PALETTE: [&str; 8] = [
    "#1f5fa8", "#b3261e", "#2e7d32", "#8e24aa", "#c25e00", "#00796b", "#5d4037", "#455a64",
];

/// A stacked bar chart: one bar per `(label, counts per series)`, series
/// named by `series`, with a legend. Drawn as SVG on the server; a table of
/// the same numbers follows it for readers who do not see the chart.
pub(crate) fn stacked_bars(ui: Ui, title: &str, series: &[String], bars: &[(String, Vec<u64>)]) -> Markup {
    let (w, h, left, bottom) = (720.0_f64, 220.0_f64, 40.0_f64, 30.0_f64);
    let max = bars
        .iter()
        .map(|(_, c)| c.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let step = (w - left) / bars.len().max(1) as f64;
    let bar_w = (step * 0.8).max(1.0);
    let scale = (h - bottom - 10.0) / max as f64;
    let label_every = (bars.len() / 10).max(1);
    html! {
        figure class="chart" {
            svg viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(title) {
                title { (title) }
                line x1=(left) y1=(h - bottom) x2=(w) y2=(h - bottom) stroke="#333" {}
                text x="2" y="14" class="axis" { (ui.num(max)) }
                text x="2" y=(h - bottom) class="axis" { "0" }
                @for (i, (label, counts)) in bars.iter().enumerate() {
                    @let x = left + i as f64 * step + (step - bar_w) / 2.0;
                    @let mut y = h - bottom;
                    @for (k, c) in counts.iter().enumerate() {
                        @if *c > 0 {
                            @let bh = *c as f64 * scale;
                            @let top = { y -= bh; y };
                            rect x=(format!("{x:.1}")) y=(format!("{top:.1}")) width=(format!("{bar_w:.1}")) height=(format!("{bh:.1}")) fill=(PALETTE[k % PALETTE.len()]) {
                                title { (label) " " (series.get(k).map(String::as_str).unwrap_or("")) ": " (ui.num(*c)) }
                            }
                        }
                    }
                    @if i % label_every == 0 {
                        text x=(format!("{:.1}", x)) y=(h - 10.0) class="axis" { (label) }
                    }
                }
            }
            figcaption {
                ul class="legend" {
                    @for (k, s) in series.iter().enumerate() {
                        li { span class="swatch" data-colour=(k % PALETTE.len()) {} (s) }
                    }
                }
            }
        }
    }
}

/// A step chart of a score over time (`(label, value)` in order), 0–100.
pub(crate) fn step_line(title: &str, points: &[(String, f64)]) -> Markup {
    let (w, h, left, bottom) = (720.0_f64, 180.0_f64, 40.0_f64, 30.0_f64);
    let step = (w - left - 10.0) / (points.len().max(2) - 1) as f64;
    let y = |v: f64| (h - bottom) - v.clamp(0.0, 100.0) / 100.0 * (h - bottom - 10.0);
    let mut d = String::new();
    for (i, (_, v)) in points.iter().enumerate() {
        let x = left + i as f64 * step;
        if i == 0 {
            d.push_str(&format!("M{x:.1},{:.1}", y(*v)));
        } else {
            d.push_str(&format!(" H{x:.1} V{:.1}", y(*v)));
        }
    }
    html! {
        figure class="chart" {
            svg viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(title) {
                title { (title) }
                line x1=(left) y1=(h - bottom) x2=(w) y2=(h - bottom) stroke="#333" {}
                text x="2" y="18" class="axis" { "100" }
                text x="2" y=(h - bottom) class="axis" { "0" }
                path d=(d) fill="none" stroke=(PALETTE[0]) stroke-width="2" {}
                @for (i, (label, v)) in points.iter().enumerate() {
                    circle cx=(format!("{:.1}", left + i as f64 * step)) cy=(format!("{:.1}", y(*v))) r="3" fill=(PALETTE[0]) {
                        title { (label) ": " (format!("{v:.1}")) }
                    }
                }
            }
        }
    }
}

/// The CSS: compiled into the binary, served from `/assets/console.css`.
pub(crate) const CSS: &str = include_str!("assets/console.css");
/// The script (live tree size): compiled in, served from `/assets/console.js`.
pub(crate) const JS: &str = include_str!("assets/console.js");

/// A `<pre>` of text in English only (hashes, commands, a verifier's own
/// words), marked as such so that a Chinese page does not pass it off as Chinese.
pub(crate) fn code_block(text: &str) -> Markup {
    html! { pre lang="en" { code { (text) } } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_money_and_times_in_each_language() {
        let tz = chrono::FixedOffset::east_opt(8 * 3600).expect("offset");
        assert_eq!(Ui::Zh.num(0), "0");
        assert_eq!(Ui::En.num(1_234_567), "1,234,567");
        assert_eq!(Ui::Zh.money(600_000_000), "¥6,000,000.00");
        assert_eq!(Ui::En.money(5), "¥0.05");
        // A time given in UTC is shown in the platform's zone.
        assert_eq!(Ui::Zh.time("2026-11-10T16:05:00Z", tz), "2026年11月11日 00:05");
        assert_eq!(Ui::En.time("2026-11-10T16:05:00Z", tz), "11 Nov 2026, 00:05");
        assert_eq!(Ui::En.time("not a time", tz), "not a time");
        assert_eq!(zone_name(tz), "UTC+08:00");
    }

    #[test]
    fn every_word_has_both_languages() {
        assert_eq!(Ui::Zh.severity("high"), "高");
        assert_eq!(Ui::En.severity("medium"), "medium");
        assert_eq!(Ui::Zh.other(), Ui::En);
        assert_eq!(Ui::parse(Ui::En.code()), Some(Ui::En));
        assert_eq!(Ui::parse("fr"), None);
    }
}

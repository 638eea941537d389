//! The console's pages. Each asks the API's handler for what it shows, as
//! the caller the session stands for, and renders the answer.

use super::ui::{code_block, stacked_bars, step_line, Ui};
use super::{enc, Visit};
use crate::api::{complaints, lotteries, merchants, paylater, AppStateRef, JsonBody, LangParam, LangQuery};
use crate::auth::Role;
use crate::core::Core;
use crate::problem::ApiError;
use crate::schemas::{ComplaintsOut, FindingOut, FindingsPage};
use axum::extract::{Multipart, Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use maud::{html, Markup};
use std::collections::BTreeMap;

/// Days of findings the overview's chart shows, ending at the business clock.
const CHART_DAYS: i64 = 30;
/// Findings per page of the findings list.
const PAGE: usize = 50;

fn lang_param(ui: Ui) -> LangParam {
    match ui {
        Ui::Zh => LangParam::Zh,
        Ui::En => LangParam::En,
    }
}

fn lang_query(ui: Ui) -> Query<LangQuery> {
    Query(LangQuery { lang: lang_param(ui) })
}

/// `/`: the overview for the platform and regulators, a merchant's own
/// page for a merchant, the consumer corner for everyone else.
pub(crate) async fn home(state: AppStateRef, v: Visit) -> Response {
    match v.role() {
        Some(r) if r.reads_all() => overview(state, v).await,
        Some(Role::Merchant(id)) => {
            let to = format!("/merchants/{}", enc(id));
            v.see_other(&to)
        }
        _ => consumer(state, v).await,
    }
}

/// What the overview shows, gathered in one read of the engine.
struct Overview {
    findings: u64,
    severities: Vec<(&'static str, u64)>,
    families: Vec<String>,
    days: Vec<(chrono::NaiveDate, Vec<u64>)>,
    fell: Vec<(String, String, Option<String>, Option<String>)>,
    blacklist: Vec<(String, String, usize)>,
    watch: Vec<(String, f64)>,
    merchants: usize,
    clock: Option<String>,
}

fn gather(core: &Core, tz: chrono::FixedOffset) -> Result<Overview, weiquan_store::StoreError> {
    let rules = core.rules();
    let clock = core.engine().clock();
    let end = clock.map(|c| date_of(c.unix_ms(), tz));
    let start = end.map(|e| e - chrono::Duration::days(CHART_DAYS - 1));
    // Counted by the database, per rule and local day from the chart's first day on.
    let offset_ms = i64::from(tz.local_minus_utc()) * 1000;
    let since_ms = start.map_or(i64::MAX, |d| {
        d.and_hms_opt(0, 0, 0)
            .map_or(i64::MAX, |t| t.and_utc().timestamp_millis() - offset_ms)
    });
    let counts = core.finding_counts(since_ms, offset_ms)?;
    let mut severities = [("high", 0u64), ("medium", 0), ("low", 0)];
    let mut per_family: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut findings = 0;
    for c in &counts {
        findings += c.count;
        // A rule this build does not know counts in the total only.
        let Some(rule) = weiquan_engine::RuleId::parse(&c.rule) else {
            continue;
        };
        let sev = rules.severity(rule).as_str();
        if let Some(s) = severities.iter_mut().find(|s| s.0 == sev) {
            s.1 += c.count;
        }
        let day =
            (c.day).and_then(|d| chrono::NaiveDate::from_num_days_from_ce_opt(i32::try_from(d + EPOCH_DAYS).ok()?));
        if let (Some(day), Some(start), Some(end)) = (day, start, end) {
            if day >= start && day <= end {
                let family = rule.as_str().split('-').next().unwrap_or("").to_owned();
                let days = per_family.entry(family).or_insert_with(|| vec![0; CHART_DAYS as usize]);
                days[(day - start).num_days() as usize] += c.count;
            }
        }
    }
    let families: Vec<String> = per_family.keys().cloned().collect();
    let days = match start {
        Some(start) => (0..CHART_DAYS)
            .map(|i| {
                let counts = per_family.values().map(|d| d[i as usize]).collect();
                (start + chrono::Duration::days(i), counts)
            })
            .collect(),
        None => Vec::new(),
    };
    let standings = core.engine().standings();
    let mut fell: Vec<_> = (standings.iter())
        .filter_map(|s| {
            let last = s.grade.history.last()?;
            // A letter later in the alphabet is a worse grade.
            let worse = matches!((last.from, last.to), (Some(a), Some(b)) if b > a);
            worse.then(|| {
                (
                    s.merchant.clone(),
                    last.at.to_string(),
                    last.from.map(String::from),
                    last.to.map(String::from),
                )
            })
        })
        .collect();
    fell.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    fell.truncate(20);
    let blacklist = (standings.iter())
        .filter_map(|s| {
            let b = s.blacklisted.as_ref()?;
            Some((s.merchant.clone(), b.at.to_string(), b.findings.len()))
        })
        .collect();
    let watch = (core.engine().watchlist().into_iter().take(10))
        .map(|w| (w.merchant, w.score))
        .collect();
    Ok(Overview {
        findings,
        severities: severities.to_vec(),
        families,
        days,
        fell,
        blacklist,
        watch,
        merchants: standings.len(),
        clock: clock.map(|c| c.to_string()),
    })
}

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01.
const EPOCH_DAYS: i64 = 719_163;

fn date_of(ms: i64, tz: chrono::FixedOffset) -> chrono::NaiveDate {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&tz).date_naive())
        .unwrap_or_default()
}

/// The log's newest checkpoint: origin, size and root (from its signed note).
struct Checkpoint {
    text: String,
    origin: String,
    size: u64,
    root: String,
}

async fn checkpoint(app: &crate::AppState) -> Result<Checkpoint, ApiError> {
    let text = String::from_utf8_lossy(&crate::api::log::latest_checkpoint(app).await?).into_owned();
    let mut lines = text.lines();
    let origin = lines.next().unwrap_or("").to_owned();
    let size = lines.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let root = lines.next().unwrap_or("").to_owned();
    Ok(Checkpoint {
        text,
        origin,
        size,
        root,
    })
}

async fn overview(State(app): AppStateRef, v: Visit) -> Response {
    if let Err(e) = v.caller.require("read the overview", Role::reads_all) {
        return v.fail(e);
    }
    let tz = v.tz;
    let o = match app.sequencer.read(move |core: &mut Core| gather(core, tz)).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return v.fail(e.into()),
        Err(e) => return v.fail(e.into()),
    };
    let cp = match checkpoint(&app).await {
        Ok(cp) => cp,
        Err(e) => return v.fail(e),
    };
    let ui = v.ui;
    let bars: Vec<(String, Vec<u64>)> = o.days.iter().map(|(d, c)| (ui.day(*d), c.clone())).collect();
    let content = html! {
        div class="cards" {
            div class="card" { div { (ui.t("违规结论", "Findings")) } div class="big" { (ui.num(o.findings)) } }
            @for (sev, n) in &o.severities {
                div class="card" { div { (ui.t("严重程度：", "Severity: ")) (ui.severity(sev)) } div class="big" { (ui.num(*n)) } }
            }
            div class="card" { div { (ui.t("商家", "Merchants")) } div class="big" { (ui.num(o.merchants as u64)) } }
            div class="card" {
                div { (ui.t("日志大小（条）", "Log size (entries)")) }
                div class="big" data-live="tree-size" { (ui.num(cp.size)) }
            }
        }
        @if let Some(c) = &o.clock { p { (ui.t("业务时钟：", "Business clock: ")) (ui.time(c, v.tz)) } }
        h2 { (ui.t("近 30 天的违规结论（按规则类别）", "Findings in the last 30 days, by rule family")) }
        @if bars.is_empty() { p { (ui.t("还没有事件。", "No events yet.")) } } @else {
            (stacked_bars(ui, ui.t("每日违规结论数", "Findings per day"), &o.families, &bars))
            details {
                summary { (ui.t("数据表", "As a table")) }
                table {
                    thead { tr { th scope="col" { (ui.t("日期", "Day")) } @for f in &o.families { th scope="col" class="num" { (f) } } } }
                    tbody { @for (d, c) in &bars { tr { th scope="row" { (d) } @for n in c { td class="num" { (ui.num(*n)) } } } } }
                }
            }
        }
        h2 { (ui.t("信用等级下降的商家", "Merchants whose grade fell")) }
        @if o.fell.is_empty() { p { (ui.t("没有。", "None.")) } } @else {
            table {
                thead { tr { th scope="col" { (ui.t("商家", "Merchant")) } th scope="col" { (ui.t("时间", "When")) } th scope="col" { (ui.t("等级", "Grade")) } } }
                tbody { @for (m, at, from, to) in &o.fell {
                    tr { td { a href=(format!("/merchants/{}", enc(m))) { (m) } } td { (ui.time(at, v.tz)) }
                         td { (from.as_deref().unwrap_or("–")) " → " span class="bad" { (to.as_deref().unwrap_or("–")) } } }
                } }
            }
        }
        h2 { (ui.t("黑名单", "Blacklist")) }
        @if o.blacklist.is_empty() { p { (ui.t("没有商家在黑名单上。", "No merchant is blacklisted.")) } } @else {
            table {
                thead { tr { th scope="col" { (ui.t("商家", "Merchant")) } th scope="col" { (ui.t("列入时间", "Since")) } th scope="col" class="num" { (ui.t("依据的结论", "Findings behind it")) } } }
                tbody { @for (m, at, n) in &o.blacklist {
                    tr { td { a href=(format!("/merchants/{}", enc(m))) { (m) } } td { (ui.time(at, v.tz)) } td class="num" { (ui.num(*n as u64)) } }
                } }
            }
        }
        h2 { (ui.t("跑路预警", "Run-away watch list")) }
        @if o.watch.is_empty() { p { (ui.t("没有商家有跑路迹象。", "No merchant shows signs of running away.")) } } @else {
            table {
                thead { tr { th scope="col" { (ui.t("商家", "Merchant")) } th scope="col" class="num" { (ui.t("风险分", "Risk score")) } } }
                tbody { @for (m, score) in &o.watch {
                    tr { td { a href=(format!("/merchants/{}", enc(m))) { (m) } } td class="num" { (format!("{score:.1}")) } }
                } }
            }
        }
        h2 { (ui.t("最新检查点", "Latest checkpoint")) }
        p { (ui.t("日志 ", "Log ")) code lang="en" { (cp.origin) } (ui.t("，大小 ", ", size ")) (ui.num(cp.size)) (ui.t("，根哈希 ", ", root hash ")) code lang="en" { (cp.root) } }
        p { a href="/log" { (ui.t("如何离线验证", "How to verify it offline")) } }
    };
    let title = ui.t("概览", "Overview");
    v.page(StatusCode::OK, title, content)
}

/// The query pairs of a console form, without empty fields (an empty
/// filter is no filter) and with a day (`YYYY-MM-DD`) in `since`/`until`
/// turned into the start of that day (for `until`, of the next day) in the
/// platform's time zone.
fn form_pairs(raw: Option<&str>, tz: chrono::FixedOffset) -> Vec<(String, String)> {
    let pairs: Vec<(String, String)> = raw.and_then(|q| serde_urlencoded::from_str(q).ok()).unwrap_or_default();
    (pairs.into_iter())
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| {
            let day = chrono::NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d").ok();
            let v = match (k.as_str(), day) {
                ("since", Some(d)) => day_start(d, tz),
                ("until", Some(d)) => day_start(d + chrono::Duration::days(1), tz),
                _ => v,
            };
            (k, v)
        })
        .collect()
}

fn day_start(d: chrono::NaiveDate, tz: chrono::FixedOffset) -> String {
    d.and_hms_opt(0, 0, 0)
        .and_then(|t| t.and_local_timezone(tz).single())
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

/// The day (in the platform's time zone) of an RFC 3339 `since`/`until`, for the form.
fn day_of(value: Option<&str>, tz: chrono::FixedOffset, back: i64) -> String {
    value
        .and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok())
        .map(|t| (t.with_timezone(&tz).date_naive() - chrono::Duration::days(back)).to_string())
        .unwrap_or_default()
}

/// `/findings`: filters, a page of findings, each with its evidence and proof.
pub(crate) async fn findings(State(app): AppStateRef, v: Visit, RawQuery(raw): RawQuery) -> Response {
    let ui = v.ui;
    let pairs = form_pairs(raw.as_deref(), v.tz);
    let encoded = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    let mut q: merchants::FindingsQuery = match serde_urlencoded::from_str(&encoded) {
        Ok(q) => q,
        Err(e) => return v.fail(ApiError::bad_request(format!("the filters are not valid: {e}"))),
    };
    q.lang = lang_param(ui);
    q.limit = Some(PAGE);
    let shown: BTreeMap<String, String> = pairs.iter().cloned().collect();
    let page = match merchants::get_findings(State(app.clone()), v.caller(), Query(q)).await {
        Ok(Json(p)) => p,
        Err(e) => return v.fail(e),
    };
    let FindingsPage { findings, next_cursor } = page;
    let own = match v.role() {
        Some(Role::Merchant(m)) => Some(m.clone()),
        _ => None,
    };
    // The filters without the page: the first page's link, and with the next cursor the next one's.
    let mut filters: Vec<(String, String)> = pairs.iter().filter(|(k, _)| k != "cursor").cloned().collect();
    let first = format!(
        "/findings?{}",
        serde_urlencoded::to_string(&filters).unwrap_or_default()
    );
    let next = next_cursor.map(|c| {
        filters.push(("cursor".into(), c.to_string()));
        format!(
            "/findings?{}",
            serde_urlencoded::to_string(&filters).unwrap_or_default()
        )
    });
    let get = |k: &str| shown.get(k).map(String::as_str).unwrap_or("");
    let content = html! {
        form method="get" action="/findings" class="filters" role="search" aria-label=(ui.t("筛选", "Filters")) {
            label { (ui.t("规则", "Rule"))
                select name="rule" {
                    option value="" { (ui.t("全部", "All")) }
                    @for r in weiquan_engine::RuleId::ALL {
                        option value=(r.as_str()) selected[get("rule") == r.as_str()] { (r.as_str()) }
                    }
                }
            }
            label { (ui.t("严重程度", "Severity"))
                select name="severity" {
                    option value="" { (ui.t("全部", "All")) }
                    @for s in ["high", "medium", "low"] { option value=(s) selected[get("severity") == s] { (ui.severity(s)) } }
                }
            }
            @if let Some(m) = &own {
                input type="hidden" name="merchant" value=(m);
            } @else {
                label { (ui.t("商家", "Merchant")) input type="text" name="merchant" value=(get("merchant")) size="12"; }
            }
            label { (ui.t("起始日期", "From")) input type="date" name="since" value=(day_of(shown.get("since").map(String::as_str), v.tz, 0)); }
            label { (ui.t("截止日期", "To")) input type="date" name="until" value=(day_of(shown.get("until").map(String::as_str), v.tz, 1)); }
            button type="submit" { (ui.t("筛选", "Filter")) }
        }
        p { (ui.t("本页 ", "This page: ")) (ui.num(findings.len() as u64)) (ui.t(" 条结论。", " findings.")) }
        (findings_table(ui, v.tz, &findings))
        nav class="pager" aria-label=(ui.t("翻页", "Pages")) {
            @if shown.contains_key("cursor") { a href=(first) { (ui.t("第一页", "First page")) } }
            @if let Some(n) = &next { a href=(n) rel="next" { (ui.t("下一页", "Next page")) } }
        }
    };
    let title = ui.t("违规结论", "Findings");
    v.page(StatusCode::OK, title, content)
}

/// Findings as a table: time, rule and severity, subject, merchant, message
/// with citation, evidence events, and the link to each one's inclusion proof.
fn findings_table(ui: Ui, tz: chrono::FixedOffset, findings: &[FindingOut]) -> Markup {
    html! {
        @if findings.is_empty() { p { (ui.t("没有符合条件的结论。", "No findings match.")) } } @else {
            table class="findings" {
                thead { tr {
                    th scope="col" { (ui.t("时间", "When")) } th scope="col" { (ui.t("规则", "Rule")) }
                    th scope="col" { (ui.t("对象", "Subject")) } th scope="col" { (ui.t("商家", "Merchant")) }
                    th scope="col" { (ui.t("内容与依据", "What and why")) } th scope="col" { (ui.t("证据事件", "Evidence")) }
                    th scope="col" { (ui.t("证明", "Proof")) }
                } }
                tbody { @for f in findings {
                    tr {
                        td { (ui.time(&f.at, tz)) }
                        td { (f.rule) br; span class=(if f.severity == "high" { "bad" } else { "" }) { (ui.severity(&f.severity)) } }
                        td { code { (f.subject) } }
                        td { @if let Some(m) = &f.merchant { a href=(format!("/merchants/{}", enc(m))) { (m) } } }
                        td { (f.message) br; small lang="zh-CN" { (f.citation) } }
                        td { @for e in &f.events { code { (e) } " " } }
                        td { a href=(format!("/v1/proofs/inclusion?index={}", f.index)) { (ui.t("第 ", "leaf ")) (f.index) (ui.t(" 条", "")) } }
                    }
                } }
            }
        }
    }
}

/// A merchant lookup form's field.
#[derive(serde::Deserialize)]
pub(crate) struct Lookup {
    id: Option<String>,
    participant: Option<String>,
}

/// `/merchants?id=…`: the lookup form's answer.
pub(crate) async fn merchant_lookup(v: Visit, Query(q): Query<Lookup>) -> Response {
    match q.id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(id) => {
            let to = format!("/merchants/{}", enc(id));
            v.see_other(&to)
        }
        None => v.see_other("/consumer"),
    }
}

/// `/lotteries?id=…&participant=…`: the lottery check form's answer.
pub(crate) async fn lottery_lookup(v: Visit, Query(q): Query<Lookup>) -> Response {
    let id = q.id.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let p = q.participant.as_deref().map(str::trim).filter(|s| !s.is_empty());
    match (id, p) {
        (Some(id), Some(p)) => {
            let to = format!("/lotteries/{}?participant={}", enc(id), enc(p));
            v.see_other(&to)
        }
        (Some(id), None) => {
            let to = format!("/lotteries/{}", enc(id));
            v.see_other(&to)
        }
        _ => v.see_other("/consumer"),
    }
}

/// `/merchants/{id}`: grade, factors and history, blacklist and its lifts,
/// complaints and findings (for those the API shows them to), and the lift
/// form for a regulator.
pub(crate) async fn merchant(State(app): AppStateRef, v: Visit, Path(id): Path<String>) -> Response {
    let ui = v.ui;
    let out = match merchants::get_merchant(State(app.clone()), v.caller(), Path(id.clone()), lang_query(ui)).await {
        Ok(Json(m)) => m,
        Err(e) => return v.fail(e),
    };
    let reads = v
        .role()
        .is_some_and(|r| r.reads_all() || *r == Role::Merchant(id.clone()));
    let complaints: Option<ComplaintsOut> = if reads {
        let q = complaints::ListQuery {
            cursor: None,
            limit: Some(100),
            merchant: Some(id.clone()),
        };
        match complaints::list(State(app.clone()), v.caller(), Query(q)).await {
            Ok(Json(c)) => Some(c),
            Err(e) => return v.fail(e),
        }
    } else {
        None
    };
    let s = &out.standing;
    let g = &s.grade;
    let points: Vec<(String, f64)> = g.history.iter().map(|h| (ui.time(&h.at, v.tz), h.score)).collect();
    let regulator = v.role() == Some(&Role::Regulator);
    let content = html! {
        div class="cards" {
            div class="card" {
                div { (ui.t("信用等级", "Credit grade")) }
                div class="grade" { (g.grade.as_deref().unwrap_or(ui.t("未评级", "Not rated"))) }
                div { (ui.t("分数 ", "Score ")) (format!("{:.1}", g.score)) " · " (ui.num(u64::from(g.orders))) (ui.t(" 笔订单", " orders")) }
            }
            div class="card" {
                div { (ui.t("黑名单", "Blacklist")) }
                @if s.blacklisted.is_some() { div class="big bad" { (ui.t("已列入", "Blacklisted")) } } @else { div class="big good" { (ui.t("未列入", "Not blacklisted")) } }
            }
        }
        p { (g.summary) }
        @if !g.rated { p class="notice" { (ui.t("订单少于 ", "Fewer than ")) (g.min_orders) (ui.t(" 笔，暂不评级。", " orders: not rated yet.")) } }
        h2 { (ui.t("评分因素", "What the grade rests on")) }
        table {
            thead { tr { th scope="col" { (ui.t("因素", "Factor")) } th scope="col" class="num" { (ui.t("数值", "Value")) } th scope="col" class="num" { (ui.t("扣分", "Points")) } th scope="col" { (ui.t("说明", "Why")) } } }
            tbody { @for f in &g.factors {
                tr { td { (factor_name(ui, &f.factor)) } td class="num" { (f.value.filter(|x| *x >= 0.0).map(|x| format!("{x:.2}")).unwrap_or_else(|| "–".into())) } td class="num" { (format!("{:.1}", f.points)) } td { (f.message) } }
            } }
        }
        h2 { (ui.t("等级历史", "Grade history")) }
        @if g.history.is_empty() { p { (ui.t("等级尚无变化。", "The grade has not changed yet.")) } } @else {
            (step_line(ui.t("每次等级变化时的分数", "Score at each change of grade"), &points))
            table {
                thead { tr { th scope="col" { (ui.t("时间", "When")) } th scope="col" { (ui.t("变化", "Change")) } th scope="col" class="num" { (ui.t("分数", "Score")) } th scope="col" { (ui.t("引起变化的事件", "Event that caused it")) } } }
                tbody { @for h in &g.history {
                    tr { td { (ui.time(&h.at, v.tz)) } td { (h.from.as_deref().unwrap_or("–")) " → " (h.to.as_deref().unwrap_or("–")) } td class="num" { (format!("{:.1}", h.score)) } td { code { (h.event) } } }
                } }
            }
        }
        h2 { (ui.t("黑名单记录", "Blacklist record")) }
        @if let Some(b) = &s.blacklisted {
            p class="bad" { (ui.t("自 ", "Blacklisted since ")) (ui.time(&b.at, v.tz)) (ui.t(" 起列入黑名单，依据以下结论：", ", on these findings:")) }
            ul { @for pair in &b.findings { li { code { (pair.join(" ")) } } } }
            @if regulator {
                form method="post" action=(format!("/merchants/{}/lift", enc(&id))) class="stack" {
                    input type="hidden" name="csrf" value=(v.csrf);
                    label for="reason" { (ui.t("解除理由（必填，将记入日志）", "Reason for lifting (required; it is logged)")) }
                    textarea id="reason" name="reason" required maxlength=(crate::api::merchants::MAX_REASON_CHARS) {}
                    p { button type="submit" { (ui.t("解除黑名单", "Lift the blacklist")) } }
                }
            }
        }
        @if s.lifted.is_empty() && s.blacklisted.is_none() { p { (ui.t("从未列入黑名单。", "Never blacklisted.")) } }
        @for l in &s.lifted {
            div class="notice lifted" {
                p { (ui.t("曾于 ", "Blacklisted on ")) (ui.time(&l.blacklisting.at, v.tz)) (ui.t(" 列入黑名单，于 ", ", lifted on ")) (ui.time(&l.lifted_at, v.tz))
                    (ui.t(" 由监管部门解除。理由：", " by a regulator. Reason: ")) span lang="" { (l.reason) } }
                p { (ui.t("依据的结论：", "Findings it rested on: ")) @for pair in &l.blacklisting.findings { code { (pair.join(" ")) } " " }
                    (ui.t("解除事件：", "Lift event: ")) code { (l.event) } }
            }
        }
        @if let Some(c) = &complaints {
            h2 { (ui.t("投诉与处理时限", "Complaints and response clocks")) }
            (complaints_table(ui, v.tz, c))
        }
        @if let Some(f) = &out.findings {
            h2 { (ui.t("违规结论", "Findings")) }
            @let latest = &f[f.len().saturating_sub(PAGE)..];
            @if f.len() > PAGE { p { (ui.t("最近 50 条；", "The latest 50; ")) a href=(format!("/findings?merchant={}", enc(&id))) { (ui.t("全部结论", "all findings")) } } }
            (findings_table(ui, v.tz, latest))
        }
    };
    let title = format!("{} {id}", ui.t("商家", "Merchant"));
    v.page(StatusCode::OK, &title, content)
}

/// A grade factor's name in words (the API names it by identifier).
fn factor_name(ui: Ui, factor: &str) -> &'static str {
    match factor {
        "findings" => ui.t("违规结论", "Findings"),
        "complaints" => ui.t("投诉率", "Complaint rate"),
        "late_shipping" => ui.t("延迟发货", "Late shipping"),
        "slow_reply" => ui.t("客服回复慢", "Slow replies"),
        _ => ui.t("其他因素", "Other factor"),
    }
}

/// The lift form's fields.
#[derive(serde::Deserialize)]
pub(crate) struct LiftForm {
    csrf: Option<String>,
    reason: Option<String>,
}

/// `POST /merchants/{id}/lift` (regulator): lifts through the API's handler, then back to the merchant page.
pub(crate) async fn lift(
    State(app): AppStateRef,
    v: Visit,
    Path(id): Path<String>,
    form: Result<axum::extract::Form<LiftForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let form = match form {
        Ok(form) => form,
        Err(e) => return v.fail(super::unreadable_form(&e)),
    };
    if !v.csrf_ok(&app.console.sessions, form.csrf.as_deref()) {
        return v.csrf_refused();
    }
    let req = merchants::LiftRequest { reason: form.0.reason };
    match merchants::lift_blacklist(State(app.clone()), v.caller(), Path(id.clone()), JsonBody(req)).await {
        Ok(_) => {
            let to = format!("/merchants/{}", enc(&id));
            v.see_other(&to)
        }
        Err(e) => v.fail(e),
    }
}

fn complaints_table(ui: Ui, tz: chrono::FixedOffset, c: &ComplaintsOut) -> Markup {
    let status = |s: &str| match s {
        "open" => ui.t("待回复", "open"),
        "responded" => ui.t("已回复", "responded"),
        "escalated" => ui.t("已升级", "escalated"),
        "resolved" => ui.t("已解决", "resolved"),
        _ => ui.t("未知", "unknown"),
    };
    html! {
        @if c.complaints.is_empty() { p { (ui.t("没有投诉。", "No complaints.")) } } @else {
            table {
                thead { tr {
                    th scope="col" { (ui.t("投诉", "Complaint")) } th scope="col" { (ui.t("商家", "Merchant")) } th scope="col" { (ui.t("订单", "Order")) }
                    th scope="col" { (ui.t("状态", "Status")) } th scope="col" { (ui.t("提交时间", "Filed")) } th scope="col" { (ui.t("回复期限", "Response due")) }
                    th scope="col" class="num" { (ui.t("剩余小时", "Hours left")) }
                } }
                tbody { @for x in &c.complaints {
                    tr {
                        td { code { (x.complaint) } }
                        td { @if let Some(m) = &x.merchant { a href=(format!("/merchants/{}", enc(m))) { (m) } } }
                        td { code { (x.order.as_deref().unwrap_or("")) } }
                        td { (status(&x.status)) @if x.overdue { " · " span class="bad" { (ui.t("已超时", "overdue")) } } }
                        td { @if let Some(t) = &x.filed_at { (ui.time(t, tz)) } }
                        td { @if let Some(t) = &x.response_due { (ui.time(t, tz)) } }
                        td class="num" { @if let Some(h) = x.response_hours_left { (h) } }
                    }
                } }
            }
        }
    }
}

/// The complaints page's paging.
#[derive(serde::Deserialize)]
pub(crate) struct Cursor {
    cursor: Option<u64>,
}

/// `/complaints`: the queue each role may read, with response clocks.
pub(crate) async fn complaints(State(app): AppStateRef, v: Visit, Query(c): Query<Cursor>) -> Response {
    let ui = v.ui;
    let q = complaints::ListQuery {
        cursor: c.cursor,
        limit: Some(100),
        merchant: None,
    };
    let out = match complaints::list(State(app.clone()), v.caller(), Query(q)).await {
        Ok(Json(c)) => c,
        Err(e) => return v.fail(e),
    };
    let content = html! {
        p { (match v.role() {
            Some(Role::Platform) => ui.t("平台可见全部投诉。", "The platform sees every complaint."),
            Some(Role::Regulator) => ui.t("监管部门可见升级到监管部门的投诉。", "Regulators see the complaints escalated to a regulator."),
            Some(Role::Merchant(_)) => ui.t("针对本店的投诉。", "Complaints against your shop."),
            _ => ui.t("你提交的投诉。", "The complaints you filed."),
        }) }
        @if !out.merchants.is_empty() {
            h2 { (ui.t("各商家未解决的投诉", "Unresolved complaints per merchant")) }
            table {
                thead { tr { th scope="col" { (ui.t("商家", "Merchant")) } th scope="col" class="num" { (ui.t("未解决", "Unresolved")) } th scope="col" class="num" { (ui.t("超时未回复", "Overdue")) } } }
                tbody { @for m in &out.merchants {
                    tr { td { (m.merchant) } td class="num" { (ui.num(m.open)) } td class="num" { @if m.overdue > 0 { span class="bad" { (ui.num(m.overdue)) } } @else { "0" } } }
                } }
            }
        }
        h2 { (ui.t("投诉列表", "Complaints")) }
        (complaints_table(ui, v.tz, &out))
        @if let Some(n) = out.next_cursor { nav class="pager" aria-label=(ui.t("翻页", "Pages")) { a href=(format!("/complaints?cursor={n}")) rel="next" { (ui.t("下一页", "Next page")) } } }
    };
    let title = ui.t("投诉", "Complaints");
    v.page(StatusCode::OK, title, content)
}

/// `/lotteries/{id}?participant=…`: terms, commitment, entrants, the draw
/// and whether it verifies, prizes, findings; and a participant's entry.
pub(crate) async fn lottery(
    State(app): AppStateRef,
    v: Visit,
    Path(id): Path<String>,
    Query(q): Query<Lookup>,
) -> Response {
    let ui = v.ui;
    let l = match lotteries::get_lottery(State(app.clone()), v.caller(), Path(id.clone()), lang_query(ui)).await {
        Ok(Json(l)) => l,
        Err(e) => return v.fail(e),
    };
    let participant = q.participant.filter(|p| !p.trim().is_empty());
    let entry = match &participant {
        None => None,
        Some(p) => {
            let pq = lotteries::ProofQuery { participant: p.clone() };
            Some(lotteries::entry_proof(State(app.clone()), v.caller(), Path(id.clone()), Query(pq)).await)
        }
    };
    let status = if l.cancelled {
        ui.t("已取消", "cancelled")
    } else if l.drawn {
        ui.t("已开奖", "drawn")
    } else if l.closed {
        ui.t("已截止，待开奖", "closed, not drawn yet")
    } else {
        ui.t("进行中", "open")
    };
    let content = html! {
        dl {
            dt { (ui.t("状态", "Status")) } dd { (status) }
            @if let Some(m) = &l.merchant { dt { (ui.t("商家", "Merchant")) } dd { a href=(format!("/merchants/{}", enc(m))) { (m) } } }
            dt { (ui.t("承诺（种子的 SHA-256）", "Commitment (SHA-256 of the seed)")) }
            dd { @if let Some(c) = &l.commitment { code { (c) } } @else { (ui.t("未公布：开奖无法验证。", "None published: the draw cannot be verified.")) } }
            dt { (ui.t("开奖算法", "Draw algorithm")) } dd { code { (l.algorithm) } }
            dt { (ui.t("参与人数（截止前）", "Entrants (before the close)")) } dd { (ui.num(l.entrants)) }
            @if let Some(root) = &l.entrants_root { dt { (ui.t("参与名单根哈希", "Entrants root")) } dd { code { (root) } } }
            @if l.late_entries > 0 { dt { (ui.t("截止后参与", "Entries after the close")) } dd { (ui.num(l.late_entries)) } }
            dt { (ui.t("开奖可验证", "Draw verifies")) }
            dd { @match l.draw_verifies {
                Some(true) => span class="good" { (ui.t("是：服务器用公布的算法由种子和参与名单重算，结果一致。", "Yes: the server recomputed it from the seed and the entrants with the published algorithm, and it matches.")) },
                Some(false) => span class="bad" { (ui.t("否：", "No: ")) span lang="en" { (l.draw_problem.as_deref().unwrap_or("")) } },
                None if l.drawn && l.commitment.is_none() => (ui.t("无法验证：开奖前未公布承诺。", "Cannot be checked: no commitment was published before the draw.")),
                None => (ui.t("尚未开奖。", "Not drawn yet.")),
            } }
        }
        h2 { (ui.t("奖品", "Prizes")) }
        table {
            thead { tr { th scope="col" { (ui.t("奖品", "Prize")) } th scope="col" class="num" { (ui.t("价值", "Value")) } th scope="col" class="num" { (ui.t("数量", "Count")) } } }
            tbody { @for p in &l.prizes { tr { td lang="" { (p.name) } td class="num" { (ui.money(p.value_fen)) } td class="num" { (ui.num(p.count)) } } } }
        }
        @if l.drawn {
            h2 { (ui.t("中奖名单", "Winners")) }
            table class="winners" {
                thead { tr { th scope="col" { (ui.t("参与者", "Participant")) } th scope="col" { (ui.t("奖品", "Prize")) } th scope="col" { (ui.t("已发货", "Shipped")) } th scope="col" { (ui.t("已送达", "Delivered")) } } }
                tbody { @for w in &l.winners { tr { td { (w.participant) } td lang="" { (w.prize) } td { (w.shipped.map(|s| ui.yes_no(s)).unwrap_or("–")) } td { (w.delivered.map(|d| ui.yes_no(d)).unwrap_or("–")) } } } }
            }
        }
        h2 { (ui.t("查询我的参与", "Check my entry")) }
        form method="get" action=(format!("/lotteries/{}", enc(&id))) class="stack" {
            label for="participant" { (ui.t("参与者编号", "Participant id")) }
            input id="participant" name="participant" type="text" required value=(participant.as_deref().unwrap_or(""));
            p { button type="submit" { (ui.t("查询", "Check")) } }
        }
        @match &entry {
            None => {},
            Some(Ok(Json(e))) => div class="notice" role="status" {
                p { (ui.t("已参与：在 ", "Entered: entry ")) (ui.num(e.index + 1)) (ui.t(" / ", " of ")) (ui.num(e.entrants)) (ui.t(" 名参与者中。", ".")) }
                p { @if e.won { span class="good" { (ui.t("中奖。", "You won.")) } } @else if l.drawn { (ui.t("未中奖。", "You did not win.")) } @else { (ui.t("尚未开奖。", "Not drawn yet.")) } }
                p { (ui.t("包含证明（RFC 6962 审计路径，十六进制）：", "Inclusion proof (RFC 6962 audit path, hex):")) }
                (code_block(&e.audit_path.join("\n")))
                @if let Some(seed) = &e.seed { p { (ui.t("公布的种子：", "Revealed seed: ")) code { (seed) } } }
            },
            Some(Err(e)) => div class="error" role="alert" { p {
                @if e.status() == StatusCode::NOT_FOUND { (ui.t("此编号不在截止前的参与名单中。", "This id is not among the entrants before the close.")) } @else { span lang="en" { (e.detail()) } }
            } },
        }
        h2 { (ui.t("违规结论", "Findings")) }
        (findings_table(ui, v.tz, &l.findings))
    };
    let title = format!("{} {id}", ui.t("抽奖", "Lottery"));
    v.page(StatusCode::OK, &title, content)
}

/// `/log`: the checkpoint, the key, and how to check both offline.
pub(crate) async fn log(State(app): AppStateRef, v: Visit) -> Response {
    let ui = v.ui;
    let cp = match checkpoint(&app).await {
        Ok(cp) => cp,
        Err(e) => return v.fail(e),
    };
    let tile = if cp.size >= 256 {
        "000".to_owned()
    } else {
        format!("000.p/{}", cp.size.max(1))
    };
    let content = html! {
        p { (ui.t("日志 ", "Log ")) code lang="en" { (cp.origin) } (ui.t(" 现有 ", " now holds ")) strong data-live="tree-size" { (ui.num(cp.size)) } (ui.t(" 条记录（事件与结论）。", " entries (events and findings).")) }
        h2 { (ui.t("最新检查点（签名文本）", "Latest checkpoint (signed note)")) }
        (code_block(&cp.text))
        p { a href="/log/checkpoint" { (ui.t("下载检查点", "Download the checkpoint")) } }
        h2 { (ui.t("日志公钥", "The log's public key")) }
        (code_block(&app.console.verifier_key))
        h2 { (ui.t("离线验证", "Verify offline")) }
        p { (ui.t("用 weiquan 验证一份收据（从 API 的 /v1/receipts/{index} 获得）：", "With weiquan, check a receipt (from the API's /v1/receipts/{index}):")) }
        (code_block("weiquan verify receipt receipt.json --pub ledger.key.pub"))
        p { (ui.t("验证整个日志（数据库副本，逐条重算）：", "Check the whole log (a copy of the database, every entry recomputed):")) }
        (code_block("weiquan verify log weiquan.db --pub ledger.key.pub"))
        p { (ui.t(
            "日志遵循 C2SP tlog-tiles，检查点是 C2SP 签名文本（Ed25519）：任何 tlog-tiles 客户端都可以用上面的公钥下载并核对瓦片。",
            "The log follows C2SP tlog-tiles and the checkpoint is a C2SP signed note (Ed25519): any tlog-tiles client can fetch and check the tiles with the key above."
        )) }
        h2 { (ui.t("下载瓦片", "Download tiles")) }
        ul {
            li { a href=(format!("/log/tile/0/{tile}")) { (ui.t("第 0 层哈希瓦片", "Level-0 hash tile")) " " code { (format!("tile/0/{tile}")) } } }
            li { a href=(format!("/log/tile/entries/{tile}")) { (ui.t("条目瓦片", "Entries tile")) " " code { (format!("tile/entries/{tile}")) } } }
        }
    };
    let title = ui.t("防篡改日志", "Tamper-evident log");
    v.page(StatusCode::OK, title, content)
}

/// `/consumer`: look up a merchant, check a lottery entry, verify a receipt;
/// a signed-in consumer's complaints and pay-later switches.
pub(crate) async fn consumer(State(app): AppStateRef, v: Visit) -> Response {
    let content = consumer_content(&app, &v, None).await;
    let title = v.ui.t("消费者专区", "Consumer corner");
    v.page(StatusCode::OK, title, content)
}

async fn consumer_content(app: &std::sync::Arc<crate::AppState>, v: &Visit, verdict: Option<Markup>) -> Markup {
    let ui = v.ui;
    let mine = match v.role() {
        Some(Role::Consumer(_)) => {
            let c = complaints::ListQuery {
                cursor: None,
                limit: Some(100),
                merchant: None,
            };
            let complaints = complaints::list(State(app.clone()), v.caller(), Query(c)).await;
            let pq = paylater::PayLaterQuery { consumer: None };
            let pay = paylater::get_paylater(State(app.clone()), v.caller(), Query(pq)).await;
            Some((complaints, pay))
        }
        _ => None,
    };
    html! {
        h2 { (ui.t("查询商家信用", "Look up a merchant's grade")) }
        form method="get" action="/merchants" class="stack" {
            label for="merchant-id" { (ui.t("商家编号", "Merchant id")) }
            input id="merchant-id" name="id" type="text" required;
            p { button type="submit" { (ui.t("查询", "Look up")) } }
        }
        h2 { (ui.t("核对我参与的抽奖", "Check a lottery I entered")) }
        form method="get" action="/lotteries" class="stack" {
            label for="lottery-id" { (ui.t("抽奖编号", "Lottery id")) }
            input id="lottery-id" name="id" type="text" required;
            label for="participant-id" { (ui.t("我的参与者编号", "My participant id")) }
            input id="participant-id" name="participant" type="text";
            p { button type="submit" { (ui.t("核对", "Check")) } }
        }
        h2 id="receipt" { (ui.t("验证收据", "Verify a receipt")) }
        @if let Some(vd) = verdict { (vd) }
        form method="post" action="/consumer/receipt" enctype="multipart/form-data" class="stack" {
            input type="hidden" name="csrf" value=(v.csrf);
            label for="receipt-file" { (ui.t("收据文件（JSON）", "Receipt file (JSON)")) }
            input id="receipt-file" name="file" type="file" accept="application/json,.json";
            label for="receipt-text" { (ui.t("或粘贴收据内容", "Or paste the receipt")) }
            textarea id="receipt-text" name="text" {}
            p { button type="submit" { (ui.t("验证", "Verify")) } }
        }
        @if let Some((complaints, pay)) = &mine {
            h2 { (ui.t("我的投诉", "My complaints")) }
            @match complaints {
                Ok(Json(c)) => (complaints_table(ui, v.tz, c)),
                Err(e) => p class="error" lang="en" { (e.detail()) },
            }
            h2 { (ui.t("我的先用后付", "My pay-later switches")) }
            @match pay {
                Ok(Json(p)) => {
                    @if p.providers.is_empty() { p { (ui.t("没有先用后付的记录。", "No pay-later records.")) } } @else {
                        table {
                            thead { tr { th scope="col" { (ui.t("服务商", "Provider")) } th scope="col" { (ui.t("已开通", "On")) } th scope="col" { (ui.t("自", "Since")) } th scope="col" { (ui.t("开通方", "Switched by")) } } }
                            tbody { @for x in &p.providers { tr { td { (x.provider) } td { (ui.yes_no(x.enabled)) } td { (ui.time(&x.since, v.tz)) } td { (switched_by(ui, &x.switched_by)) } } } }
                        }
                    }
                },
                Err(e) => p class="error" lang="en" { (e.detail()) },
            }
        }
    }
}

/// Who switched pay-later on or off, in words.
fn switched_by(ui: Ui, who: &str) -> &'static str {
    match who {
        "consumer" => ui.t("消费者本人", "the consumer"),
        "platform" => ui.t("平台", "the platform"),
        "merchant" => ui.t("商家", "the merchant"),
        _ => ui.t("其他", "someone else"),
    }
}

/// A receipt form that could not be read: over its limit (413), or malformed.
fn unreadable_receipt(e: &axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(format!(
            "the receipt form is over {} MiB; a receipt is far smaller: send the JSON that /v1/receipts/{{index}} gave",
            super::RECEIPT_BYTES >> 20
        ))
    } else {
        ApiError::bad_request(format!("the form could not be read: {e}"))
    }
}

/// `POST /consumer/receipt`: a receipt (file or pasted), checked against
/// this log's key: valid, or exactly why not.
pub(crate) async fn verify_receipt(State(app): AppStateRef, v: Visit, mut form: Multipart) -> Response {
    let ui = v.ui;
    // Taken before a byte of the body is read, and held until it is all read.
    let Some(_reading) = app.console.receipt_read(v.source) else {
        return v.fail(ApiError::unavailable(
            "too many receipts are being checked right now; send yours again in a few seconds, or check it offline with `weiquan verify receipt`",
        ));
    };
    let (mut csrf, mut text) = (None, String::new());
    let read = async {
        loop {
            match form.next_field().await {
                Ok(Some(field)) => {
                    let name = field.name().unwrap_or("").to_owned();
                    let value = field.text().await.map_err(|e| unreadable_receipt(&e))?;
                    match name.as_str() {
                        "csrf" => csrf = Some(value),
                        "file" | "text" if text.trim().is_empty() => text = value,
                        _ => {}
                    }
                }
                Ok(None) => return Ok(()),
                Err(e) => return Err(unreadable_receipt(&e)),
            }
        }
    };
    match tokio::time::timeout(std::time::Duration::from_secs(super::RECEIPT_SECS), read).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return v.fail(e),
        Err(_) => {
            return v.fail(ApiError::timeout(format!(
                "the receipt did not arrive within {} s; send it again",
                super::RECEIPT_SECS
            )))
        }
    }
    if !v.csrf_ok(&app.console.sessions, csrf.as_deref()) {
        return v.csrf_refused();
    }
    let verdict = match serde_json::from_str::<weiquan_ledger::Receipt>(text.trim_start_matches('\u{feff}')) {
        Err(e) => html! { div class="error" role="alert" {
            p { (ui.t("这不是一份收据：需要 /v1/receipts/{index} 给出的 JSON。", "This is not a receipt: it must be the JSON that /v1/receipts/{index} gives.")) }
            p lang="en" { (e.to_string()) }
        } },
        Ok(r) => match weiquan_ledger::verify_receipt(&r, &app.console.verifier) {
            Ok(cp) => html! { div class="notice" role="status" {
                p class="good" { (ui.t("有效。", "Valid.")) }
                p { (ui.t("第 ", "Leaf ")) (r.index) (ui.t(" 条记录包含在本日志签名的、大小为 ", " is included in the tree of size ")) (ui.num(cp.size))
                    (ui.t(" 的树中；签名与包含证明均已核对。", " that this log signed; the signature and the inclusion proof both check.")) }
                (code_block(&r.leaf))
            } },
            Err(e) => {
                let why = match &e {
                    weiquan_ledger::VerifyError::Checkpoint { .. } => ui.t(
                        "检查点的签名无法用本日志的公钥验证：检查点被改动，或不是本日志签发的。",
                        "The checkpoint's signature does not verify with this log's key: it was altered, or another log signed it.",
                    ),
                    weiquan_ledger::VerifyError::Proof(_) => ui.t(
                        "该记录不在检查点承诺的树中：记录内容或包含证明被改动。",
                        "The entry is not in the tree the checkpoint commits to: the entry or its proof was altered.",
                    ),
                    _ => ui.t("收据的内容不对。", "The receipt's content is not right."),
                };
                html! { div class="error" role="alert" { p class="bad" { (ui.t("无效。", "Not valid.")) " " (why) } p lang="en" { (e.to_string()) } } }
            }
        },
    };
    let content = consumer_content(&app, &v, Some(verdict)).await;
    let title = ui.t("消费者专区", "Consumer corner");
    v.page(StatusCode::OK, title, content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_form_drops_empty_fields_and_reads_days_in_the_platforms_zone() {
        let tz = chrono::FixedOffset::east_opt(8 * 3600).expect("offset");
        let pairs = form_pairs(
            Some("rule=&severity=high&since=2026-11-11&until=2026-11-11&merchant=m%201"),
            tz,
        );
        assert_eq!(
            pairs,
            vec![
                ("severity".to_owned(), "high".to_owned()),
                ("since".to_owned(), "2026-11-11T00:00:00+08:00".to_owned()),
                // `until` is exclusive: the whole day is in.
                ("until".to_owned(), "2026-11-12T00:00:00+08:00".to_owned()),
                ("merchant".to_owned(), "m 1".to_owned()),
            ]
        );
        // Shown back in the form as the days chosen.
        assert_eq!(day_of(Some("2026-11-12T00:00:00+08:00"), tz, 1), "2026-11-11");
        assert_eq!(day_of(None, tz, 0), "");
    }

    #[test]
    fn ids_in_paths_are_encoded_and_cannot_leave_the_site() {
        assert_eq!(enc("m1"), "m1");
        assert_eq!(enc("//evil.example"), "%2F%2Fevil.example");
        assert_eq!(enc("a b"), "a%20b");
        assert_eq!(enc("商家"), "%E5%95%86%E5%AE%B6");
    }
}

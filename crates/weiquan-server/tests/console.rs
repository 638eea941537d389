//! The web console in a real browser (Debian's chromium through
//! chromedriver): every page in both languages, each role signed in, the
//! forms that act, and what a caller who should not succeed gets. Each page
//! is checked with axe-core (no serious or critical violation), for
//! requests to other hosts, and for words of the other language; a
//! screenshot of each is written to `target/console-screenshots/`.
//!
//! Needs `chromium`, `chromium-driver` (apt) and axe-core (npm):
//! `scripts/test` installs them.

mod common;

use common::{ev, Db, Server};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn case(name: &str) -> String {
    std::fs::read_to_string(workspace().join(format!("tests/cases/{name}/events.ndjson"))).expect("case file")
}

/// chromedriver on a free port, stopped when dropped.
struct Driver(Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn browser() -> (Driver, Client) {
    let driver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(&driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {driver} ({e}): install Debian's chromium and chromium-driver (scripts/test does)")
        });
    let driver = Driver(child, port);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
               "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--window-size=1280,1000", "--lang=zh-CN"]}),
    );
    let mut last = None;
    for _ in 0..100 {
        // Plain HTTP to a local chromedriver: no TLS.
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{}", driver.1))
            .await
        {
            Ok(c) => return (driver, c),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer: {last:?}");
}

fn axe_source() -> String {
    let path = std::env::var("WEIQUAN_AXE_JS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace().join("target/console-tools/node_modules/axe-core/axe.min.js"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core is needed at {} ({e}): run `npm install --prefix target/console-tools axe-core@4.14.1` (scripts/test does)",
            path.display()
        )
    })
}

/// What every page must pass, once loaded: its language, axe-core, no request
/// to another host, no word of the other language outside marked elements;
/// then its screenshot.
async fn check_page(c: &Client, base: &str, axe: &str, name: &str, lang: &str) {
    let html_lang = c
        .execute("return document.documentElement.lang", vec![])
        .await
        .expect("lang");
    assert_eq!(html_lang, json!(if lang == "zh" { "zh-CN" } else { "en" }), "{name}");
    let title = c
        .find(Locator::Css("h1"))
        .await
        .expect("h1")
        .text()
        .await
        .expect("h1 text");
    assert!(!title.is_empty(), "{name} has a heading");
    // No request leaves the server.
    let resources = c
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href])",
            vec![],
        )
        .await
        .expect("resources");
    for r in resources.as_array().expect("list") {
        let r = r.as_str().unwrap_or("");
        assert!(r.starts_with(base), "{name} ({lang}) requested {r}, not on {base}");
    }
    // An English page has no Chinese outside elements marked with another (or
    // an unknown) language, except what a sentence quotes ("耳机") or glosses
    // in parentheses (定金): the platform's data and a legal term.
    if lang == "en" {
        let mixed = c
            .execute(
                r#"const out = []; const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
                   while (w.nextNode()) { const n = w.currentNode; const el = n.parentElement.closest('[lang]');
                     const own = n.textContent.replace(/"[^"]*"/g, '').replace(/\([^)]*\)/g, '');
                     if (el && el.lang === 'en' && /[\u4e00-\u9fff]/.test(own)) out.push(n.textContent.trim()); }
                   return out;"#,
                vec![],
            )
            .await
            .expect("mixed");
        assert_eq!(mixed, json!([]), "{name} (en) shows Chinese");
    }
    c.execute(axe, vec![]).await.expect("axe loads");
    let violations = c
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               axe.run(document).then(r => done(r.violations
                 .filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))))
                 .catch(e => done(['axe failed: ' + e]));"#,
            vec![],
        )
        .await
        .expect("axe runs");
    assert_eq!(violations, json!([]), "{name} ({lang}): accessibility");
    let shot = c.screenshot().await.expect("screenshot");
    let dir = workspace().join("target/console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    std::fs::write(dir.join(format!("{name}-{lang}.png")), shot).expect("screenshot written");
}

/// Types `text` into the field with id `id`.
async fn type_into(c: &Client, id: &str, text: &str) {
    let field = c
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("field {id}: {e}"));
    field
        .send_keys(text)
        .await
        .unwrap_or_else(|e| panic!("typing into {id}: {e}"));
}

/// Clicks the element `css` finds.
async fn click(c: &Client, css: &str) {
    let el = c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
    el.click().await.unwrap_or_else(|e| panic!("clicking {css}: {e}"));
}

/// The texts of every element `css` finds on the page.
async fn texts(c: &Client, css: &str) -> Value {
    c.execute(
        &format!("return [...document.querySelectorAll({css:?})].map(e => e.textContent)"),
        vec![],
    )
    .await
    .expect("texts")
}

/// Waits (up to 10 s) until the script `cond` is true on the current page:
/// a click that submits a form returns before the next page has loaded.
async fn wait_for(c: &Client, cond: &str) {
    for _ in 0..200 {
        if c.execute(&format!("return !!({cond})"), vec![]).await.ok() == Some(json!(true)) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "waited 10 s for `{cond}` on {}",
        c.current_url().await.map(|u| u.to_string()).unwrap_or_default()
    );
}

async fn sign_in(c: &Client, base: &str, key: &str) {
    c.goto(&format!("{base}/signin")).await.expect("sign-in page");
    type_into(c, "key", key).await;
    click(c, "main form button").await;
    wait_for(c, "document.querySelector('.who')").await;
}

async fn sign_out(c: &Client) {
    click(c, "header form button").await;
    wait_for(c, "!document.querySelector('.who')").await;
}

async fn text_of(c: &Client, css: &str) -> String {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.expect("text"),
        Err(e) => panic!(
            "{css} is not on {}: {e}\n{}",
            c.current_url().await.map(|u| u.to_string()).unwrap_or_default(),
            c.source().await.unwrap_or_default()
        ),
    }
}

/// A committed lottery run through weiquan (announce, entries, close, draw),
/// so that its page can show a draw that verifies.
async fn committed_lottery(s: &Server, platform: &str) {
    let (st, v) = s
        .call(
            "POST",
            "/v1/lotteries",
            Some(platform),
            Some(
                json!({"lottery": "lv", "merchant": "m2", "host": "h1", "stream": "st-lv",
                "prizes": [{"name": "耳机", "value_fen": 29900, "count": 1}],
                "draw_at": "2026-11-20T20:00:00+08:00", "deliver_within_days": 7,
                "organizer": "店铺m2", "contact": "400-000-0000", "at": "2026-11-20T10:00:00+08:00"})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let entries: Vec<String> = (1..=5)
        .map(|i| {
            ev(
                &format!("lv-e{i}"),
                "lottery.entered",
                json!({"at": "2026-11-20T11:00:00+08:00", "lottery": "lv", "participant": format!("fan{i}")}),
            )
        })
        .collect();
    s.post_events(platform, entries.join("\n")).await;
    for step in ["close", "draw"] {
        let (st, v) = s
            .call(
                "POST",
                &format!("/v1/lotteries/lv/{step}"),
                Some(platform),
                Some(String::new()),
            )
            .await;
        assert_eq!(st, 200, "{step}: {v}");
    }
    // The prize is shipped and delivered to whoever won.
    let (_, lottery) = s.call("GET", "/v1/lotteries/lv", Some(platform), None).await;
    assert_eq!(lottery["winners"][0]["delivered"], json!(false), "{lottery}");
    let winner = lottery["winners"][0]["participant"]
        .as_str()
        .expect("a winner")
        .to_owned();
    let shipped = ev(
        "lv-ship",
        "lottery.prize_shipped",
        json!({"at": "2026-11-21T10:00:00+08:00", "lottery": "lv", "participant": winner, "prize": "耳机", "value_fen": 29900}),
    );
    let delivered = ev(
        "lv-delivered",
        "lottery.prize_delivered",
        json!({"at": "2026-11-22T10:00:00+08:00", "lottery": "lv", "participant": winner}),
    );
    s.post_events(platform, format!("{shipped}\n{delivered}")).await;
    let (_, lottery) = s.call("GET", "/v1/lotteries/lv", Some(platform), None).await;
    assert_eq!(lottery["winners"][0]["delivered"], json!(true), "{lottery}");
    assert_eq!(lottery["winners"][0]["shipped"], json!(true), "{lottery}");
}

/// The log's newest size, from its public checkpoint.
async fn tree_size(s: &Server) -> u64 {
    let (_, v) = s.call("GET", "/log/checkpoint", None, None).await;
    v.as_str()
        .and_then(|t| t.lines().nth(1))
        .and_then(|n| n.parse().ok())
        .expect("checkpoint size")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    let db = Db::sqlite();
    let s = Server::start(db.config(None)).await;
    let base = s.base.clone();
    let platform = db.key("platform").await;
    let regulator = db.key("regulator").await;
    let merchant = db.key("merchant:m7").await;
    let consumer = db.key("consumer:fan3").await;
    for name in ["merchants", "lottery", "presale"] {
        s.post_events(&platform, case(name)).await;
    }
    committed_lottery(&s, &platform).await;
    let axe = axe_source();
    let (_driver, c) = browser().await;

    // Every page, in both languages, as the reader it is for.
    let public = [
        ("consumer", "/consumer"),
        ("log", "/log"),
        ("merchant", "/merchants/m2"),
        ("lottery", "/lotteries/lv?participant=fan3"),
        ("signin", "/signin"),
    ];
    let regulator_pages = [
        ("overview", "/"),
        ("findings", "/findings"),
        ("complaints", "/complaints"),
        ("merchant-regulator", "/merchants/m6"),
    ];
    for lang in ["zh", "en"] {
        c.goto(&format!("{base}/consumer?lang={lang}"))
            .await
            .expect("language chosen");
        for (name, path) in public {
            c.goto(&format!("{base}{path}")).await.expect("page");
            check_page(&c, &base, &axe, name, lang).await;
        }
        sign_in(&c, &base, &regulator).await;
        for (name, path) in regulator_pages {
            c.goto(&format!("{base}{path}")).await.expect("page");
            check_page(&c, &base, &axe, name, lang).await;
        }
        sign_out(&c).await;
    }
    // The language chosen last (English) persisted across pages and sign-in.
    assert_eq!(text_of(&c, "a.lang").await, "中文");

    // Signed in as each role: the header says who, the menu fits the role.
    c.goto(&format!("{base}/consumer?lang=zh"))
        .await
        .expect("back to Chinese");
    for (key, who, menu_has, menu_lacks) in [
        (&platform, "平台", "/findings", ""),
        (&regulator, "监管部门", "/", ""),
        (&merchant, "商家 m7", "/merchants/m7", "/complaints?"),
        (&consumer, "消费者 fan3", "/consumer", "/findings"),
    ] {
        sign_in(&c, &base, key).await;
        assert_eq!(text_of(&c, ".who").await, who);
        let links = c
            .execute(
                "return [...document.querySelectorAll('header nav a')].map(a => a.getAttribute('href'))",
                vec![],
            )
            .await
            .expect("menu");
        let links: Vec<&str> = links
            .as_array()
            .expect("list")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(links.contains(&menu_has), "{who}: {links:?}");
        assert!(!links.contains(&menu_lacks), "{who}: {links:?}");
        sign_out(&c).await;
        c.goto(&format!("{base}/")).await.expect("home");
        assert!(
            c.find(Locator::Css(".who")).await.is_err(),
            "still signed out on the next page"
        );
    }

    // Filter findings as a regulator: every row is of the rule chosen.
    sign_in(&c, &base, &regulator).await;
    c.goto(&format!("{base}/findings")).await.expect("findings");
    let all_rows = c
        .find_all(Locator::Css("table.findings tbody tr"))
        .await
        .expect("rows")
        .len();
    click(&c, "select[name=rule] option[value='MC-06']").await;
    click(&c, "form.filters button").await;
    wait_for(&c, "location.search.includes('rule=MC-06')").await;
    let rules = texts(&c, "table.findings tbody tr td:nth-child(2)").await;
    let rules = rules.as_array().expect("list");
    assert!(
        !rules.is_empty() && rules.len() < all_rows,
        "{} of {all_rows}",
        rules.len()
    );
    assert!(
        rules.iter().all(|r| r.as_str().is_some_and(|r| r.starts_with("MC-06"))),
        "{rules:?}"
    );

    // Lift m6's blacklist as a regulator: the merchant page shows the lift, and the log holds it.
    let before = tree_size(&s).await;
    c.goto(&format!("{base}/merchants/m6")).await.expect("merchant page");
    type_into(&c, "reason", "整改完成，经核查").await;
    click(&c, "main form button").await;
    wait_for(&c, "document.querySelector('.lifted')").await;
    assert_eq!(text_of(&c, ".card .big").await, "未列入");
    // The grade's factors are named in the page's language, not by the API's identifiers.
    let factors = texts(&c, "main > table:first-of-type tbody td:first-child").await;
    assert_eq!(factors, json!(["违规结论", "投诉率", "延迟发货", "客服回复慢"]));
    let record = text_of(&c, ".lifted").await;
    assert!(record.contains("整改完成，经核查"), "{record}");
    assert_eq!(tree_size(&s).await, before + 1, "the lift is one new entry of the log");
    let (_, blacklist) = s.call("GET", "/v1/blacklist", Some(&regulator), None).await;
    assert!(!blacklist.to_string().contains("\"m6\""), "{blacklist}");
    sign_out(&c).await;

    // Verify a valid and a tampered receipt in the consumer corner.
    let (st, receipt) = s.call("GET", "/v1/receipts/3", Some(&regulator), None).await;
    assert_eq!(st, 200, "{receipt}");
    let file = db.dir.path().join("receipt.json");
    std::fs::write(&file, receipt.to_string()).expect("receipt file");
    c.goto(&format!("{base}/consumer")).await.expect("corner");
    type_into(&c, "receipt-file", file.to_str().expect("path")).await;
    click(&c, "form[action='/consumer/receipt'] button").await;
    wait_for(&c, "document.querySelector('[role=status], [role=alert]')").await;
    assert!(
        text_of(&c, "[role=status]").await.starts_with("有效"),
        "a valid receipt"
    );
    let mut tampered = receipt.clone();
    let leaf = tampered["leaf"]
        .as_str()
        .expect("leaf")
        .replacen("\"v\":1", "\"v\":2", 1);
    assert_ne!(leaf, receipt["leaf"].as_str().expect("leaf"), "the leaf was changed");
    tampered["leaf"] = json!(leaf);
    type_into(&c, "receipt-text", &tampered.to_string()).await;
    click(&c, "form[action='/consumer/receipt'] button").await;
    wait_for(&c, "document.querySelector('[role=alert]')").await;
    let verdict = text_of(&c, "[role=alert]").await;
    assert!(verdict.starts_with("无效") && verdict.contains("包含证明"), "{verdict}");

    // A consumer checks their lottery entry.
    sign_in(&c, &base, &consumer).await;
    c.goto(&format!("{base}/consumer")).await.expect("corner");
    type_into(&c, "lottery-id", "lv").await;
    type_into(&c, "participant-id", "fan3").await;
    click(&c, "form[action='/lotteries'] button").await;
    wait_for(&c, "document.querySelector('[role=status], [role=alert]')").await;
    let entry = text_of(&c, "[role=status]").await;
    assert!(entry.contains("已参与") && entry.contains("/ 5"), "{entry}");
    let winners = text_of(&c, "table.winners tbody").await;
    assert!(winners.ends_with("是 是"), "shipped and delivered: {winners}");
    let dd = text_of(&c, "dl").await;
    assert!(dd.contains("服务器用公布的算法"), "the draw verifies: {dd}");
    sign_out(&c).await;

    // A merchant cannot reach another merchant's data through the pages.
    sign_in(&c, &base, &merchant).await;
    c.goto(&format!("{base}/merchants/m8")).await.expect("other merchant");
    let headings = texts(&c, "h2").await;
    assert!(
        !headings.to_string().contains("违规结论"),
        "another merchant's findings: {headings}"
    );
    c.goto(&format!("{base}/findings?merchant=m8"))
        .await
        .expect("findings of another");
    assert_eq!(text_of(&c, "h1").await, "无权查看");
    c.goto(&format!("{base}/merchants/m7")).await.expect("own page");
    let own = texts(&c, "h2").await;
    assert!(own.to_string().contains("违规结论"), "its own findings: {own}");
    sign_out(&c).await;
    c.close().await.expect("browser closed");
    s.stop().await;
}

/// A browser's forms, sent by hand.
struct Forms {
    http: reqwest::Client,
    base: String,
}

/// The form token on an HTML page.
fn token_in(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a token")
        .to_owned()
}

/// The `name=value` of cookie `name` a response sets (`wq_session`: signed
/// in; `wq_anon`: an anonymous visitor's session).
fn cookie_set(resp: &reqwest::Response, name: &str) -> Option<String> {
    cookie_line(resp, name).and_then(|v| v.split(';').next().map(str::to_owned))
}

/// The whole `Set-Cookie` line for cookie `name` a response sets.
fn cookie_line(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

impl Forms {
    /// A browser's forms against the server at `base` (redirects not followed).
    fn new(base: &str) -> Forms {
        Forms {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: base.to_owned(),
        }
    }

    /// The HTML of page `path` with session `cookie`.
    async fn page(&self, path: &str, cookie: &str) -> String {
        (self.http.get(format!("{}{path}", self.base)))
            .header("cookie", cookie)
            .send()
            .await
            .expect("page")
            .text()
            .await
            .expect("html")
    }

    /// A new anonymous session and its token, as a browser gets them.
    async fn open(&self) -> (String, String) {
        let resp = self
            .http
            .get(format!("{}/signin", self.base))
            .send()
            .await
            .expect("page");
        let cookie = cookie_set(&resp, "wq_anon").expect("an anonymous session's cookie");
        (cookie, token_in(&resp.text().await.expect("html")))
    }

    async fn post(&self, path: &str, cookie: &str, form: Vec<(&str, &str)>) -> reqwest::Result<reqwest::Response> {
        self.http
            .post(format!("{}{path}", self.base))
            .header("cookie", cookie.to_owned())
            .form(&form)
            .send()
            .await
    }

    /// A session signed in with `key`, and its token.
    async fn signed_in(&self, key: &str) -> (String, String) {
        let (cookie, csrf) = self.open().await;
        let resp = self
            .post("/signin", &cookie, vec![("csrf", &csrf), ("key", key)])
            .await
            .expect("sign in");
        assert_eq!(resp.status(), 303);
        let cookie = cookie_set(&resp, "wq_session").expect("a signed-in session's cookie");
        let page = self.page("/consumer", &cookie).await;
        (cookie, token_in(&page))
    }
}

/// Who the header of a page's HTML says is signed in.
fn who_in(page: &str) -> Option<String> {
    page.split("class=\"who\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .map(str::to_owned)
}

/// The digest a session cookie names for `key` (hex SHA-256).
fn hex_digest_of(key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

/// Forms without this session's CSRF token are refused, whoever sends them,
/// and change nothing; a session cookie cannot be forged or carried to a key
/// that was revoked; a platform session cannot lift a blacklist.
#[tokio::test]
async fn forms_need_their_token_and_the_right_role() {
    let db = Db::sqlite();
    let s = Server::start(db.config(None)).await;
    let platform = db.key("platform").await;
    let regulator = db.key("regulator").await;
    s.post_events(&platform, case("merchants")).await;
    let f = Forms::new(&s.base);
    let http = &f.http;

    // Sign-in without a token, or with another session's, is refused.
    let (cookie, _) = f.open().await;
    let (_, other_csrf) = f.open().await;
    for form in [
        vec![("key", regulator.as_str())],
        vec![("csrf", other_csrf.as_str()), ("key", regulator.as_str())],
    ] {
        let resp = f.post("/signin", &cookie, form).await.expect("sent");
        assert_eq!(resp.status(), 403);
        assert!(resp.headers().get("set-cookie").is_none(), "no session was opened");
    }
    // A form far over its limit is a page that says the limit, not the API's JSON.
    let huge = "k".repeat(20_000);
    let resp = f
        .post("/signin", &cookie, vec![("csrf", "x"), ("key", &huge)])
        .await
        .expect("sent");
    assert_eq!(resp.status(), 413);
    let kind = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(kind.starts_with("text/html"), "{kind}");
    assert!(resp.text().await.expect("html").contains("the form is over 16 KiB"));
    // A wrong key is refused with the reason, in the page's language.
    let (cookie, csrf) = f.open().await;
    let resp = f
        .post("/signin", &cookie, vec![("csrf", &csrf), ("key", "wq_not-a-key")])
        .await
        .expect("sent");
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.expect("html").contains("此密钥未知"));

    // A regulator's lift without its token changes nothing.
    let (reg_cookie, reg_csrf) = f.signed_in(&regulator).await;
    for form in [
        vec![("reason", "no token")],
        vec![("csrf", other_csrf.as_str()), ("reason", "wrong token")],
    ] {
        let resp = f.post("/merchants/m6/lift", &reg_cookie, form).await.expect("sent");
        assert_eq!(resp.status(), 403);
    }
    // No reason: refused and nothing lifted.
    let resp = f
        .post(
            "/merchants/m6/lift",
            &reg_cookie,
            vec![("csrf", &reg_csrf), ("reason", " ")],
        )
        .await
        .expect("sent");
    assert_eq!(resp.status(), 422);
    // A platform session with its own valid token may not lift.
    let (pf_cookie, pf_csrf) = f.signed_in(&platform).await;
    let resp = f
        .post(
            "/merchants/m6/lift",
            &pf_cookie,
            vec![("csrf", &pf_csrf), ("reason", "platform tries")],
        )
        .await
        .expect("sent");
    assert_eq!(resp.status(), 403);
    let (_, blacklist) = s.call("GET", "/v1/blacklist", Some(&regulator), None).await;
    assert!(
        blacklist.to_string().contains("\"m6\""),
        "still blacklisted: {blacklist}"
    );

    // A forged cookie (another key's digest under the old signature) is a new anonymous session.
    let mut parts: Vec<String> = reg_cookie.split('.').map(str::to_owned).collect();
    parts[2] = hex_digest_of(&platform);
    let forged = parts.join(".");
    let page = f.page("/", &forged).await;
    assert!(!page.contains("监管部门"), "a forged session is nobody");
    // Revoking the key ends its sessions.
    let page = f.page("/", &reg_cookie).await;
    assert!(page.contains("class=\"who\">监管部门"), "signed in");
    let (d, k) = (db.db.clone(), regulator.clone());
    tokio::task::spawn_blocking(move || weiquan_server::revoke_key(&d, &k))
        .await
        .expect("join")
        .expect("revoked");
    tokio::time::sleep(weiquan_server::KEY_CACHE_TTL + std::time::Duration::from_millis(200)).await;
    let page = f.page("/", &reg_cookie).await;
    assert!(!page.contains("class=\"who\""), "the revoked key's session ended");
    // The console's pages say where nothing else may load from.
    let resp = http.get(format!("{}/log", s.base)).send().await.expect("page");
    let csp = resp
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("form-action 'self'"),
        "{csp}"
    );
    s.stop().await;
}

/// A request that arrives without the signed-in cookie (a link or a form
/// from another site: the browser leaves a SameSite cookie out of some of
/// them) never replaces it, so another site cannot sign a reader out; the
/// signed-in cookie is Lax, so a link into the console arrives signed in;
/// signing out clears it.
#[tokio::test]
async fn another_site_cannot_sign_a_reader_out() {
    let db = Db::sqlite();
    let s = Server::start(db.config(None)).await;
    let regulator = db.key("regulator").await;
    let f = Forms::new(&s.base);
    let (cookie, csrf) = f.signed_in(&regulator).await;
    // The signed-in cookie as set at sign-in: Lax, HttpOnly.
    let (anon, anon_csrf) = f.open().await;
    let resp = f
        .post("/signin", &anon, vec![("csrf", &anon_csrf), ("key", &regulator)])
        .await
        .expect("sign in");
    let line = cookie_line(&resp, "wq_session").expect("set at sign-in");
    assert!(line.contains("SameSite=Lax") && line.contains("HttpOnly"), "{line}");

    // A page and a form (with a wrong token) sent without any cookie, as a cross-site
    // request may be: neither sets the signed-in cookie.
    let page = f
        .http
        .get(format!("{}/merchants/m8", s.base))
        .send()
        .await
        .expect("page");
    assert_eq!(cookie_set(&page, "wq_session"), None);
    let anon = cookie_line(&page, "wq_anon").expect("an anonymous session instead");
    assert!(anon.contains("SameSite=Lax"), "a link from elsewhere keeps it: {anon}");
    let form = f
        .http
        .post(format!("{}/signout", s.base))
        .form(&[("csrf", "forged")])
        .send()
        .await
        .expect("form");
    assert_eq!(form.status(), 403);
    assert_eq!(cookie_set(&form, "wq_session"), None);
    // Nor a new anonymous one, which would break the forms the reader has open.
    assert_eq!(cookie_set(&form, "wq_anon"), None);
    // The reader is still signed in.
    assert_eq!(who_in(&f.page("/consumer", &cookie).await).as_deref(), Some("监管部门"));

    // Signing out clears the cookie, and the ended session is cleared if sent again.
    let out = f
        .post("/signout", &cookie, vec![("csrf", &csrf)])
        .await
        .expect("sign out");
    assert_eq!(out.status(), 303);
    let cleared = cookie_line(&out, "wq_session").expect("cleared");
    assert!(
        cleared.starts_with("wq_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let again = f
        .http
        .get(format!("{}/consumer", s.base))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("page");
    let cleared = cookie_line(&again, "wq_session").expect("an ended session is cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(who_in(&again.text().await.expect("html")), None);
    s.stop().await;
}

/// Receipt forms, which anybody may post before any check, are read a few at
/// a time (two per address) and for a bounded time: slow anonymous uploads of
/// a megabyte each cannot make the server hold gigabytes (an outside review
/// held 2.4 GiB with 760 of them), and one address cannot hold every place
/// (a second review did, with eight). One over the size is a 413 that says so.
#[tokio::test]
async fn receipt_uploads_are_read_a_few_at_a_time_and_not_for_long() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = Db::sqlite();
    let s = Server::start(db.config(None)).await;
    let addr: std::net::SocketAddr = s.base.trim_start_matches("http://").parse().expect("address");
    // An upload from `from` that sends its headers and the start of its body, then stalls.
    let stall = |from: [u8; 4]| async move {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind((std::net::Ipv4Addr::from(from), 0).into()).expect("bind");
        let mut c = socket.connect(addr).await.expect("connect");
        let head = format!(
            "POST /consumer/receipt HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary=zz\r\nContent-Length: 1000000\r\n\r\n--zz\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nAAAA"
        );
        c.write_all(head.as_bytes()).await.expect("send");
        c
    };
    let answer = |mut c: tokio::net::TcpStream| async move {
        let mut answer = vec![0u8; 64];
        let n = tokio::time::timeout(std::time::Duration::from_secs(20), c.read(&mut answer))
            .await
            .expect("answered within the form's time")
            .expect("read");
        String::from_utf8_lossy(&answer[..n]).into_owned()
    };
    // Two from one address hold its places: a third from it is turned away at once.
    let mut stalled = vec![stall([127, 0, 0, 2]).await, stall([127, 0, 0, 2]).await];
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let third = answer(stall([127, 0, 0, 2]).await).await;
    assert!(third.starts_with("HTTP/1.1 503"), "{third}");
    // Six more from three other addresses fill the eight places.
    for from in [3, 4, 5] {
        stalled.push(stall([127, 0, 0, from]).await);
        stalled.push(stall([127, 0, 0, from]).await);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let post = |text: String| async {
        let form = reqwest::multipart::Form::new().text("text", text);
        let resp = (reqwest::Client::new().post(format!("{}/consumer/receipt?lang=en", s.base)))
            .multipart(form)
            .send()
            .await
            .expect("sent");
        (resp.status().as_u16(), resp.text().await.unwrap_or_default())
    };
    // Then one from anywhere is turned away at once, before its body is read, and told what to do.
    let (status, page) = post("{}".into()).await;
    assert_eq!(status, 503, "{page}");
    assert!(page.contains("weiquan verify receipt"), "{page}");
    // The stalled ones are cut off after the form's time, with a 408.
    for c in stalled {
        let answer = answer(c).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    // Then a form is read again (and refused for its missing token, not turned away),
    // and one over the size is told its limit.
    let (status, page) = post("{}".into()).await;
    assert_eq!(status, 403, "{page}");
    let (status, page) = post("A".repeat(1_100_000)).await;
    assert_eq!(status, 413, "{page}");
    assert!(page.contains("the receipt form is over 1 MiB"), "{page}");
    s.stop().await;
}

/// Cookies are `Secure` when the page was reached over TLS (a proxy's
/// `X-Forwarded-Proto`), or always with `secure_cookies`.
#[tokio::test]
async fn secure_cookies() {
    let db = Db::sqlite();
    let s = Server::start(db.config(None)).await;
    let f = Forms::new(&s.base);
    let set_cookie = |resp: &reqwest::Response| {
        resp.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let plain = f.http.get(format!("{}/log", s.base)).send().await.expect("page");
    assert!(!set_cookie(&plain).contains("Secure"), "{}", set_cookie(&plain));
    let proxied = (f.http.get(format!("{}/log", s.base)))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .expect("page");
    assert!(set_cookie(&proxied).contains("; Secure"), "{}", set_cookie(&proxied));
    s.stop().await;

    let db = Db::sqlite();
    let s = Server::start(weiquan_server::Config {
        secure_cookies: true,
        ..db.config(None)
    })
    .await;
    let resp = reqwest::get(format!("{}/log", s.base)).await.expect("page");
    assert!(set_cookie(&resp).contains("; Secure"), "{}", set_cookie(&resp));
    // Behind TLS for good, the cookies are `__Host-` ones (no other host may set
    // them), and signing in and out goes through them.
    let regulator = db.key("regulator").await;
    let f = Forms::new(&s.base);
    let page = f.http.get(format!("{}/signin", s.base)).send().await.expect("page");
    let anon = cookie_set(&page, "__Host-wq_anon").expect("a prefixed anonymous session");
    let csrf = token_in(&page.text().await.expect("html"));
    let signed = f
        .post("/signin", &anon, vec![("csrf", &csrf), ("key", &regulator)])
        .await
        .expect("sign in");
    assert_eq!(signed.status(), 303);
    let line = cookie_line(&signed, "__Host-wq_session").expect("a prefixed session");
    assert!(
        line.contains("; Path=/;") && line.contains("; Secure") && !line.contains("Domain"),
        "{line}"
    );
    let cookie = cookie_set(&signed, "__Host-wq_session").expect("a prefixed session");
    assert_eq!(who_in(&f.page("/consumer", &cookie).await).as_deref(), Some("监管部门"));
    // A bare cookie, as a sibling host could plant, is nobody's session here.
    let bare = cookie.replacen("__Host-", "", 1);
    assert_eq!(who_in(&f.page("/consumer", &bare).await), None);
    s.stop().await;
}

/// A sign-out holds after a restart (it is kept in the database, on both
/// stores), and signing in again ends the session signed in before.
#[tokio::test]
async fn a_sign_out_outlives_a_restart() {
    for (name, db) in Db::both() {
        let regulator = db.key("regulator").await;
        let platform = db.key("platform").await;
        let s = Server::start(db.config(None)).await;
        let f = Forms::new(&s.base);
        let (cookie, csrf) = f.signed_in(&regulator).await;
        assert_eq!(
            who_in(&f.page("/consumer", &cookie).await).as_deref(),
            Some("监管部门"),
            "{name}"
        );
        let resp = f
            .post("/signout", &cookie, vec![("csrf", &csrf)])
            .await
            .expect("signed out");
        assert_eq!(resp.status(), 303, "{name}");
        assert_eq!(who_in(&f.page("/consumer", &cookie).await), None, "{name}: signed out");
        // Signing in again, with another key, from a signed-in session ends that session.
        let (second, second_csrf) = f.signed_in(&regulator).await;
        let resp = (f.post("/signin", &second, vec![("csrf", &second_csrf), ("key", &platform)]))
            .await
            .expect("signed in again");
        assert_eq!(resp.status(), 303, "{name}");
        assert_eq!(
            who_in(&f.page("/consumer", &second).await),
            None,
            "{name}: the earlier session ended"
        );
        s.stop().await;
        let s = Server::start(db.config(None)).await;
        let f = Forms::new(&s.base);
        assert_eq!(
            who_in(&f.page("/consumer", &cookie).await),
            None,
            "{name}: still signed out after a restart"
        );
        assert_eq!(
            who_in(&f.page("/consumer", &second).await),
            None,
            "{name}: still ended after a restart"
        );
        s.stop().await;
    }
}

/// Whoever a request is counted against, it is counted once: a session
/// cookie or a bearer key known to be valid is charged to its key on every
/// route (the public log's too, which do not ask who calls), not with its
/// address's anonymous visitors, so that an office behind one address keeps
/// working while anonymous requests from it are refused. A session is
/// charged to its key only while it stands (a signed-out cookie someone kept
/// spends the address's allowance), and signing out is never refused for the
/// key's allowance (a flood on it cannot keep the holder signed in).
#[tokio::test]
async fn a_key_is_charged_on_every_route_and_not_its_address() {
    let db = Db::sqlite();
    let s = Server::start(weiquan_server::Config {
        rate_limit: 2,
        ..db.config(None)
    })
    .await;
    let regulator = db.key("regulator").await;
    let f = Forms::new(&s.base);
    let (cookie, csrf) = f.signed_in(&regulator).await;
    let limited = |cookie: Option<&str>, key: Option<&str>| {
        let (http, base) = (f.http.clone(), s.base.clone());
        let (cookie, key) = (cookie.map(str::to_owned), key.map(str::to_owned));
        async move {
            for _ in 0..20 {
                let mut req = http.get(format!("{base}/log/checkpoint"));
                if let Some(c) = &cookie {
                    req = req.header("cookie", c);
                }
                if let Some(k) = &key {
                    req = req.bearer_auth(k);
                }
                if req.send().await.expect("sent").status() == 429 {
                    return true;
                }
            }
            false
        }
    };
    assert!(
        limited(Some(&cookie), None).await,
        "a session's requests to the log are counted"
    );
    // Another key, known valid after one call, is counted on the log's routes too.
    let platform = db.key("platform").await;
    let (st, _) = s.call("GET", "/v1/blacklist", Some(&platform), None).await;
    assert_eq!(st, 200);
    assert!(
        limited(None, Some(&platform)).await,
        "a bearer key's requests to the log are counted"
    );
    // The regulator's allowance spent through its session: signing out still works.
    assert!(limited(Some(&cookie), None).await, "over its limit");
    let out = f.post("/signout", &cookie, vec![("csrf", &csrf)]).await.expect("sent");
    assert_eq!(out.status(), 303, "signed out while the key is over its limit");
    // The signed-out cookie, replayed, is not charged to the key.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let (status, _) = s.call("GET", "/v1/blacklist", Some(&regulator), None).await;
    assert_eq!(status, 200);
    limited(Some(&cookie), None).await;
    let (status, body) = s.call("GET", "/v1/blacklist", Some(&regulator), None).await;
    assert_eq!(status, 200, "the key's own call, after the kept cookie's: {body}");
    s.stop().await;
}

/// An id that holds a right-to-left override (which the spec allows) is shown
/// with it escaped in the page's title and heading, where it would reorder
/// the text after it and make one merchant look like another.
#[tokio::test]
async fn an_id_cannot_reorder_a_pages_title() {
    let db = Db::sqlite();
    let s = Server::start(db.config(None)).await;
    let platform = db.key("platform").await;
    let id = "m1\u{202E}gpj";
    s.post_events(
        &platform,
        ev(
            "reg",
            "merchant.registered",
            json!({"merchant": id, "name": "店", "uscc": "91330100MA2B000018", "channels": ["store"]}),
        ),
    )
    .await;
    let f = Forms::new(&s.base);
    let page = f.page(&format!("/merchants/{}?lang=en", "m1%E2%80%AEgpj"), "").await;
    assert!(page.contains("<h1>Merchant m1\\u{202e}gpj</h1>"), "{page}");
    assert!(page.contains("<title>Merchant m1\\u{202e}gpj"), "{page}");
    assert!(!page.contains('\u{202E}'), "the override itself is nowhere: {page}");
    s.stop().await;
}

/// Every page answers on both stores, for the reader it is for.
#[tokio::test]
async fn every_page_answers_on_both_stores() {
    for (name, db) in Db::both() {
        let s = Server::start(db.config(None)).await;
        let platform = db.key("platform").await;
        let regulator = db.key("regulator").await;
        for case_name in ["merchants", "lottery"] {
            s.post_events(&platform, case(case_name)).await;
        }
        let f = Forms::new(&s.base);
        let (cookie, _) = f.signed_in(&regulator).await;
        for (path, heading) in [
            ("/?lang=en", "<h1>Overview</h1>"),
            ("/findings?lang=en&rule=MC-06", "<h1>Findings</h1>"),
            ("/complaints?lang=en", "<h1>Complaints</h1>"),
            ("/merchants/m6?lang=en", "<h1>Merchant m6</h1>"),
            ("/lotteries/l1?lang=en", "<h1>Lottery l1</h1>"),
            ("/log?lang=en", "<h1>Tamper-evident log</h1>"),
            ("/consumer?lang=en", "<h1>Consumer corner</h1>"),
        ] {
            let page = f.page(path, &cookie).await;
            assert!(page.contains(heading), "{name} {path}: {page}");
        }
        let findings = f.page("/findings?lang=en&rule=MC-06", &cookie).await;
        assert!(
            findings.contains("<td>MC-06<br>") && !findings.contains("<td>MC-01<br>"),
            "{name}: filtered"
        );
        s.stop().await;
    }
}

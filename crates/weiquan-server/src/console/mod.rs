//! The web console: server-rendered pages for regulators, the platform,
//! merchants and consumers, in Chinese (the default) or English.
//!
//! Every page is a view of what the API answers the same reader: a page
//! calls the API's handler with the caller its session stands for, so that
//! the pages cannot show what the API would refuse. Sessions are signed
//! cookies opened by pasting an API key (`session`); every form carries a
//! CSRF token. Pages work without JavaScript; the CSS and the one small
//! script are compiled into the binary, and the Content-Security-Policy
//! keeps every request on this server.

mod pages;
mod session;
mod ui;

use crate::api::AppStateRef;
use crate::auth::{Caller, Role};
use crate::problem::ApiError;
use crate::AppState;
use axum::extract::rejection::FormRejection;
use axum::extract::{DefaultBodyLimit, Form, FromRequestParts, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
pub(crate) use session::CookieNames;
use session::{Session, SESSION_SECS};
pub(crate) use session::{Sessions, SignOuts};
use std::sync::Arc;
pub(crate) use ui::Ui;

/// What the console holds beside the API's state.
pub(crate) struct Console {
    /// Session cookies and CSRF tokens.
    pub sessions: Sessions,
    /// Sessions signed out before their expiry.
    pub signouts: SignOuts,
    /// The log's public key, to verify receipts pasted into the consumer corner.
    pub verifier: signed_note::StandardVerifier,
    /// The same key as text (the log page shows it).
    pub verifier_key: String,
    /// The platform's time zone: the console shows times in it.
    pub tz: chrono::FixedOffset,
    /// Cookies are `Secure` on every page (the console is reached over TLS
    /// through a proxy), not only where a proxy says so.
    pub secure_cookies: bool,
    /// The names of its cookies (`__Host-` prefixed with `secure_cookies`).
    pub cookie_names: CookieNames,
    /// Receipt forms being read at once ([`RECEIPT_READS`]): anybody may post
    /// one, up to [`RECEIPT_BYTES`], before any check.
    pub receipt_reads: tokio::sync::Semaphore,
    /// How many of those each source is sending ([`RECEIPT_READS_PER_SOURCE`]).
    pub receipt_sources: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

impl Console {
    /// A place to read a receipt form from `source` (an address, or an IPv6
    /// /64), if one is free, overall and for that source: held until dropped.
    pub(crate) fn receipt_read(&self, source: Option<std::net::IpAddr>) -> Option<ReceiptRead<'_>> {
        let mut sources = self
            .receipt_sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(ip) = source {
            if sources.get(&ip).is_some_and(|&n| n >= RECEIPT_READS_PER_SOURCE) {
                return None;
            }
        }
        let permit = self.receipt_reads.try_acquire().ok()?;
        if let Some(ip) = source {
            *sources.entry(ip).or_default() += 1;
        }
        Some(ReceiptRead {
            _permit: permit,
            source,
            sources: &self.receipt_sources,
        })
    }
}

/// A receipt form being read; its places are given back when it is dropped.
pub(crate) struct ReceiptRead<'a> {
    _permit: tokio::sync::SemaphorePermit<'a>,
    source: Option<std::net::IpAddr>,
    sources: &'a std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

impl Drop for ReceiptRead<'_> {
    fn drop(&mut self) {
        let Some(ip) = self.source else { return };
        let mut sources = self.sources.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = sources.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                sources.remove(&ip);
            }
        }
    }
}

/// Most receipt forms read at once. Each may hold a megabyte (a few, parsed)
/// until its token is checked at the end of the body; without a bound, a few
/// hundred slow anonymous uploads held gigabytes (an outside review measured
/// 2.4 GiB from 760 connections).
pub(crate) const RECEIPT_READS: usize = 8;
/// Most receipt forms read at once from one source (an address, or an IPv6
/// /64): so that holding every place takes several (an outside review held
/// them all with eight slow uploads from one address).
pub(crate) const RECEIPT_READS_PER_SOURCE: usize = 2;
/// How long a receipt form's body may take to arrive.
pub(crate) const RECEIPT_SECS: u64 = 10;

/// Largest body of the receipt form (a receipt to verify).
pub(crate) const RECEIPT_BYTES: usize = 1 << 20;
/// Largest body of the other forms (a key, a token, a lift's reason):
/// anybody can post them, before any check.
pub(crate) const FORM_BYTES: usize = 16 << 10;

/// The key digest of the signed-in console session a request's cookie
/// names, if its signature holds, it has not expired and it was not signed
/// out: what a request is charged to instead of its address. A signed-out
/// cookie someone kept must not spend its key's allowance.
pub(crate) async fn session_key(app: &AppState, headers: &axum::http::HeaderMap) -> Option<[u8; 32]> {
    let now = chrono::Utc::now().timestamp();
    let s = session::cookie(headers, &app.console.cookie_names.session)
        .and_then(|c| app.console.sessions.open_cookie(c, now))?;
    let key = s.key?;
    // A sign-out that cannot be looked up now counts as one here: the address pays.
    matches!(app.console.signouts.ended(&s.sid).await, Ok(false)).then_some(key)
}

/// Whether a request signs out: never charged to its key, and its key never
/// looked up, so that a flood on the key's allowance (a copied cookie, say)
/// cannot keep its holder from signing out.
pub(crate) fn signs_out(method: &axum::http::Method, path: &str) -> bool {
    method == axum::http::Method::POST && path == "/signout"
}

/// Whether `path` is a console form's POST route: those are authorised by
/// the session and its CSRF token, not by a bearer key.
pub(crate) fn is_form(path: &str) -> bool {
    matches!(path, "/signin" | "/signout" | "/consumer/receipt")
        || (path.starts_with("/merchants/") && path.ends_with("/lift"))
}

/// The console's routes.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(pages::home))
        .route("/findings", get(pages::findings))
        .route("/merchants", get(pages::merchant_lookup))
        .route("/merchants/{id}", get(pages::merchant))
        .route(
            "/merchants/{id}/lift",
            post(pages::lift).layer(DefaultBodyLimit::max(FORM_BYTES)),
        )
        .route("/lotteries", get(pages::lottery_lookup))
        .route("/lotteries/{id}", get(pages::lottery))
        .route("/complaints", get(pages::complaints))
        .route("/log", get(pages::log))
        .route("/consumer", get(pages::consumer))
        .route(
            "/consumer/receipt",
            post(pages::verify_receipt).layer(DefaultBodyLimit::max(RECEIPT_BYTES)),
        )
        .route(
            "/signin",
            get(sign_in_page).post(sign_in).layer(DefaultBodyLimit::max(FORM_BYTES)),
        )
        .route("/signout", post(sign_out).layer(DefaultBodyLimit::max(FORM_BYTES)))
        .route(
            "/assets/console.css",
            get(|| async { asset("text/css; charset=utf-8", ui::CSS) }),
        )
        .route(
            "/assets/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", ui::JS) }),
        )
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// One request to the console: the reader's language, session, caller and
/// the cookies to set with the answer.
pub(crate) struct Visit {
    /// The page's language.
    pub ui: Ui,
    /// The session (signed in or not).
    pub session: Session,
    /// Who the session stands for, as the API sees them.
    pub caller: Caller,
    /// The request's path.
    pub path: String,
    /// The request's query string, without `lang`.
    query: String,
    /// The form token of this session.
    pub csrf: String,
    /// The platform's time zone.
    pub tz: chrono::FixedOffset,
    /// Where the request came from (its address, or an IPv6 /64), when known.
    pub source: Option<std::net::IpAddr>,
    /// Whether the page was reached over TLS (cookies get `Secure`).
    secure: bool,
    /// `Set-Cookie` values to send.
    cookies: Vec<String>,
}

impl FromRequestParts<Arc<AppState>> for Visit {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, app: &Arc<AppState>) -> Result<Self, Response> {
        let now = chrono::Utc::now().timestamp();
        let secure = app.console.secure_cookies
            || parts.uri.scheme_str() == Some("https")
            || parts
                .headers
                .get("x-forwarded-proto")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
        let pairs: Vec<(String, String)> = parts
            .uri
            .query()
            .and_then(|q| serde_urlencoded::from_str(q).ok())
            .unwrap_or_default();
        let names = &app.console.cookie_names;
        let asked = pairs.iter().find(|(k, _)| k == "lang").and_then(|(_, v)| Ui::parse(v));
        let mut cookies = Vec::new();
        let ui = match asked {
            Some(ui) => {
                // The choice persists: a year, like any language preference.
                cookies.push(session::set_cookie(names.lang.as_str(), ui.code(), 365 * 86400, secure));
                ui
            }
            None => session::cookie(&parts.headers, &names.lang)
                .and_then(Ui::parse)
                .unwrap_or_default(),
        };
        let query = serde_urlencoded::to_string(pairs.iter().filter(|(k, _)| k != "lang").collect::<Vec<_>>())
            .unwrap_or_default();
        let sessions = &app.console.sessions;
        let opened = |name| session::cookie(&parts.headers, name).and_then(|c| sessions.open_cookie(c, now));
        let carried = session::cookie(&parts.headers, &names.session).is_some();
        let found = opened(&names.session);
        // The rate-limit middleware charged the session's key when it knew it valid.
        let charged = parts.extensions.get::<crate::auth::KeyCharged>().map(|c| c.0);
        let (mut session, mut caller, mut error) = (None, Caller(None), None);
        if let Some(s) = found {
            let ended = match s.key {
                None => Ok(false),
                Some(_) => app.console.signouts.ended(&s.sid).await,
            };
            match (s.key, ended) {
                (None, _) => session = Some(s),
                // Signed out: a new anonymous session below.
                (Some(_), Ok(true)) => {}
                (Some(_), Err(e)) => {
                    error = Some(e);
                    session = Some(s);
                }
                // Signing out needs the session, not its caller.
                (Some(_), Ok(false)) if signs_out(&parts.method, parts.uri.path()) => session = Some(s),
                (Some(d), Ok(false)) => match Caller::of_digest(app, d, charged == Some(d)).await {
                    Ok(Some(c)) => {
                        caller = c;
                        session = Some(s);
                    }
                    // The key was revoked or expired: the session ends with it.
                    Ok(None) => {}
                    // Rate-limited, or the key store unreachable: the session
                    // stays, and this page says so in the reader's language.
                    Err(e) => {
                        error = Some(e);
                        session = Some(s);
                    }
                },
            }
        }
        let session = match session {
            Some(s) => s,
            None => {
                // A signed-in cookie this request carried that no longer stands (signed
                // out, its key revoked, expired, forged) is cleared. One it did not carry
                // is left alone: a request from another site arrives without it, and
                // must not sign the reader out.
                if carried {
                    cookies.push(session::set_cookie(&names.session, "", 0, secure));
                }
                match opened(&names.anon).filter(|s| s.key.is_none()) {
                    Some(s) => s,
                    None => {
                        let s = sessions.open(None, now);
                        // A form posted without one (from another site) is refused for
                        // its token anyway; a new cookie would only break the forms the
                        // reader has open. Pages set it.
                        if parts.method == axum::http::Method::GET {
                            cookies.push(session::set_cookie(
                                &names.anon,
                                &sessions.seal(&s),
                                SESSION_SECS,
                                secure,
                            ));
                        }
                        s
                    }
                }
            }
        };
        let visit = Visit {
            ui,
            csrf: sessions.csrf(&session.sid),
            session,
            caller,
            path: parts.uri.path().to_owned(),
            query,
            tz: app.console.tz,
            source: (parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>())
            .map(|c| crate::listen::source(c.0.ip())),
            secure,
            cookies,
        };
        match error {
            Some(e) => Err(visit.fail(e)),
            None => Ok(visit),
        }
    }
}

impl Visit {
    /// The signed-in role, if any.
    pub(crate) fn role(&self) -> Option<&Role> {
        self.caller.0.as_ref().map(|p| &p.role)
    }

    /// A copy of the caller, for a call to the API's handlers.
    pub(crate) fn caller(&self) -> Caller {
        Caller(self.caller.0.clone())
    }

    /// Whether the form token `token` is this session's.
    pub(crate) fn csrf_ok(&self, sessions: &Sessions, token: Option<&str>) -> bool {
        token.is_some_and(|t| sessions.csrf_ok(&self.session.sid, t))
    }

    /// The navigation for this reader's role.
    fn nav(&self) -> Vec<ui::NavItem> {
        let ui = self.ui;
        let item = |href: &str, label| ui::NavItem {
            href: href.to_owned(),
            label,
        };
        let mut nav = Vec::new();
        match self.role() {
            Some(r) if r.reads_all() => {
                nav.push(item("/", ui.t("概览", "Overview")));
                nav.push(item("/findings", ui.t("违规结论", "Findings")));
                nav.push(item("/complaints", ui.t("投诉", "Complaints")));
            }
            Some(Role::Merchant(id)) => {
                nav.push(item(&format!("/merchants/{}", enc(id)), ui.t("我的店铺", "My shop")));
                nav.push(item("/findings", ui.t("违规结论", "Findings")));
                nav.push(item("/complaints", ui.t("投诉", "Complaints")));
            }
            _ => {}
        }
        nav.push(item("/consumer", ui.t("消费者专区", "Consumer corner")));
        nav.push(item("/log", ui.t("日志", "Log")));
        nav
    }

    /// Who is signed in, in words.
    fn who(&self) -> Option<String> {
        let ui = self.ui;
        self.role().map(|r| match r {
            Role::Platform => ui.t("平台", "Platform").to_owned(),
            Role::Regulator => ui.t("监管部门", "Regulator").to_owned(),
            Role::Merchant(id) => format!("{} {id}", ui.t("商家", "Merchant")),
            Role::Consumer(id) => format!("{} {id}", ui.t("消费者", "Consumer")),
        })
    }

    /// A page: `content` in the frame, with the console's headers and cookies.
    pub(crate) fn page(self, status: StatusCode, title: &str, content: Markup) -> Response {
        let switch = {
            let sep = if self.query.is_empty() { "" } else { "&" };
            format!("{}?{}{sep}lang={}", self.path, self.query, self.ui.other().code())
        };
        let markup = ui::frame(
            &ui::Frame {
                ui: self.ui,
                title,
                nav: self.nav(),
                path: &self.path,
                switch_href: switch,
                who: self.who(),
                csrf: &self.csrf,
                tz: self.tz,
            },
            content,
        );
        let mut resp = (status, markup.into_string()).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        // Nothing on a page may come from, or go to, another host.
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; \
                 form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
        h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        self.set_cookies(resp)
    }

    /// `resp` with this visit's cookies set.
    fn set_cookies(&self, mut resp: Response) -> Response {
        for c in &self.cookies {
            if let Ok(v) = HeaderValue::from_str(c) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        resp
    }

    /// The page for an error the API (or the console) answered: what went
    /// wrong and what to do, in the page's language.
    pub(crate) fn fail(self, e: ApiError) -> Response {
        let ui = self.ui;
        let status = e.status();
        let (title, what) = match status.as_u16() {
            400 | 422 => (
                ui.t("请求有误", "Bad request"),
                ui.t("请检查填写的内容后重试。", "Check what you entered and try again."),
            ),
            401 => (
                ui.t("需要登录", "Sign-in needed"),
                ui.t(
                    "此页面需要登录：请用 API 密钥登录。",
                    "This page needs you to sign in with an API key.",
                ),
            ),
            403 => (
                ui.t("无权查看", "Not allowed"),
                ui.t(
                    "当前账户的角色无权查看或执行此操作。",
                    "The role you are signed in with may not see or do this.",
                ),
            ),
            404 => (
                ui.t("未找到", "Not found"),
                ui.t("没有事件提到它：请检查编号。", "No events name it: check the id."),
            ),
            409 => (
                ui.t("冲突", "Conflict"),
                ui.t("此操作与已记录的内容冲突。", "This conflicts with what is recorded."),
            ),
            413 => (
                ui.t("内容过大", "Too large"),
                ui.t(
                    "提交的内容超过此表单的上限。",
                    "What was sent is larger than this form takes.",
                ),
            ),
            429 => (
                ui.t("请求过多", "Too many requests"),
                ui.t("请稍后再试。", "Wait a moment and try again."),
            ),
            _ => (
                ui.t("暂时无法完成", "Could not be done now"),
                ui.t(
                    "服务暂时不可用，请稍后重试。",
                    "The service is unavailable; try again shortly.",
                ),
            ),
        };
        let signin = status == StatusCode::UNAUTHORIZED && self.role().is_none();
        let content = html! {
            div class="error" role="alert" {
                p { (what) }
                @if ui == Ui::En {
                    p { (e.detail()) }
                } @else {
                    details { summary { "技术细节（英文）" } p lang="en" { (e.detail()) } }
                }
            }
            @if signin { p { a href="/signin" { (ui.t("登录", "Sign in")) } } }
        };
        self.page(status, title, content)
    }

    /// A redirect after a form (303), with this visit's cookies.
    pub(crate) fn see_other(self, to: &str) -> Response {
        self.set_cookies((StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response())
    }

    /// The refusal of a form without this session's token.
    pub(crate) fn csrf_refused(self) -> Response {
        let e = ApiError::forbidden(
            "the form's token is missing or not this session's; reload the page and send the form again",
        );
        self.fail(e)
    }
}

/// A console form's body that could not be read, as the page's error: a
/// browser gets a page in its reader's language, not the API's JSON.
pub(crate) fn unreadable_form(e: &FormRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(format!(
            "the form is over {} KiB; what a form takes (a key, a token, a reason of at most {} characters) is far less",
            FORM_BYTES >> 10,
            crate::api::merchants::MAX_REASON_CHARS
        ))
    } else {
        ApiError::bad_request(format!("the form could not be read: {}", e.body_text()))
    }
}

/// A path segment, percent-encoded.
pub(crate) fn enc(s: &str) -> String {
    // `serde_urlencoded` encodes a value as a form does; a space as `+` is
    // not a path's, so it is written `%20`.
    serde_urlencoded::to_string([("", s)])
        .map(|v| v.trim_start_matches('=').replace('+', "%20"))
        .unwrap_or_default()
}

/// The sign-in form.
async fn sign_in_page(v: Visit) -> Response {
    let content = sign_in_form(&v, None);
    let title = v.ui.t("登录", "Sign in");
    v.page(StatusCode::OK, title, content)
}

fn sign_in_form(v: &Visit, error: Option<&str>) -> Markup {
    let ui = v.ui;
    html! {
        @if let Some(e) = error { div class="error" role="alert" { p { (e) } } }
        p { (ui.t(
            "粘贴 weiquan 发给你的 API 密钥（以 wq_ 开头）。密钥只用于此次登录，不会保存在浏览器中；会话 8 小时后失效。",
            "Paste the API key weiquan gave you (it begins with wq_). The key is used to sign in and is not kept in the browser; the session ends after 8 hours."
        )) }
        form method="post" action="/signin" class="stack" {
            input type="hidden" name="csrf" value=(v.csrf);
            label for="key" { (ui.t("API 密钥", "API key")) }
            input id="key" name="key" type="password" autocomplete="off" required size="50";
            p { button type="submit" { (ui.t("登录", "Sign in")) } }
        }
        p { (ui.t("不登录也可以使用", "Without signing in you can use the")) " " a href="/consumer" { (ui.t("消费者专区", "consumer corner")) } (ui.t("。", ".")) }
    }
}

/// A sign-in form's fields.
#[derive(serde::Deserialize)]
struct SignIn {
    csrf: Option<String>,
    key: Option<String>,
}

async fn sign_in(State(app): AppStateRef, v: Visit, form: Result<Form<SignIn>, FormRejection>) -> Response {
    let form = match form {
        Ok(form) => form,
        Err(e) => return v.fail(unreadable_form(&e)),
    };
    if !v.csrf_ok(&app.console.sessions, form.csrf.as_deref()) {
        return v.csrf_refused();
    }
    let key = form.key.as_deref().unwrap_or("").trim();
    let role = match app.keys.role(key).await {
        Ok(r) => r,
        Err(e) => return v.fail(e),
    };
    if role.is_none() {
        let msg = v.ui.t(
            "此密钥未知、已撤销或已过期。请检查是否完整粘贴，或用 `weiquan keys create` 创建新密钥。",
            "This key is unknown, revoked or expired. Check that you pasted all of it, or create one with `weiquan keys create`.",
        );
        let content = sign_in_form(&v, Some(msg));
        let title = v.ui.t("登录", "Sign in");
        return v.page(StatusCode::UNAUTHORIZED, title, content);
    }
    // A new session id on sign-in: a session fixed before cannot be taken
    // over; one signed in before (with another key, say) ends.
    let now = chrono::Utc::now().timestamp();
    if let Err(e) = app.console.signouts.end(&v.session, now).await {
        return v.fail(e);
    }
    let sessions = &app.console.sessions;
    let s = sessions.open(Some(crate::auth::digest(key)), now);
    let mut v = v;
    v.cookies.push(session::set_cookie(
        &app.console.cookie_names.session,
        &sessions.seal(&s),
        SESSION_SECS,
        v.secure,
    ));
    v.see_other("/")
}

/// The sign-out form's one field.
#[derive(serde::Deserialize)]
struct Token {
    csrf: Option<String>,
}

async fn sign_out(State(app): AppStateRef, v: Visit, form: Result<Form<Token>, FormRejection>) -> Response {
    let form = match form {
        Ok(form) => form,
        Err(e) => return v.fail(unreadable_form(&e)),
    };
    if !v.csrf_ok(&app.console.sessions, form.csrf.as_deref()) {
        return v.csrf_refused();
    }
    let now = chrono::Utc::now().timestamp();
    if let Err(e) = app.console.signouts.end(&v.session, now).await {
        return v.fail(e);
    }
    // The signed-in cookie goes; the next page opens (or finds) an anonymous session.
    let mut v = v;
    v.cookies
        .push(session::set_cookie(&app.console.cookie_names.session, "", 0, v.secure));
    v.see_other("/")
}

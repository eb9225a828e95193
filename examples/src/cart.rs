//! The stateful HTTP demo: a shopping cart kept in the memory of the instance
//! that served it, keyed by the application's own `cart` cookie. Every
//! response names the instance (`x-backend` header and the JSON body) and
//! says whether this instance knew the cart (`state`: `new`, `kept`, `lost`),
//! so a session that reached another instance shows as a lost cart.
//!
//! Routes: `GET /` (a small web page), `GET /api/cart`,
//! `POST /api/cart/items?item=NAME`, `GET /healthz`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::{BACKEND_HEADER, Identity};

/// The application's own session cookie (not sticky's).
pub const CART_COOKIE: &str = "cart";

/// The web page served at `/`: shows the cart and the instance serving it
/// (`__INSTANCE__` is replaced by the name of the instance serving the page).
pub const INDEX_HTML: &str = include_str!("../cart/index.html");

/// What every cart response carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartView {
    /// The instance that answered.
    pub instance: String,
    /// Its version (Envoy cluster).
    pub version: String,
    /// The cart id (the `cart` cookie).
    pub cart: String,
    /// Items in the cart on this instance, oldest first.
    pub items: Vec<String>,
    /// `new` (no cart cookie yet), `kept` (this instance holds the cart) or
    /// `lost` (the client has a cart this instance never saw).
    pub state: String,
}

#[derive(Default)]
struct Carts {
    by_id: Mutex<HashMap<String, Vec<String>>>,
    next_id: AtomicU64,
}

#[derive(Clone)]
struct App {
    identity: Arc<Identity>,
    carts: Arc<Carts>,
}

/// The cart service's routes for one instance.
pub fn router(identity: Identity) -> Router {
    let app = App {
        identity: Arc::new(identity),
        carts: Arc::new(Carts::default()),
    };
    Router::new()
        .route("/", get(index))
        .route("/api/cart", get(show))
        .route("/api/cart/items", post(add))
        .route("/healthz", get(healthz))
        .with_state(app)
}

/// Serves the cart on `listener` until the process ends (HTTP/1.1 and h2c).
pub async fn serve(listener: tokio::net::TcpListener, identity: Identity) -> std::io::Result<()> {
    axum::serve(listener, router(identity)).await
}

#[derive(Deserialize)]
struct AddQuery {
    item: Option<String>,
}

async fn index(State(app): State<App>) -> Response {
    let page = INDEX_HTML.replace("__INSTANCE__", &html_escape(&app.identity.name));
    let mut r = ([(CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response();
    tag(&mut r, &app.identity);
    r
}

async fn healthz(State(app): State<App>) -> Response {
    let mut r = "ok\n".into_response();
    tag(&mut r, &app.identity);
    r
}

async fn show(State(app): State<App>, headers: HeaderMap) -> Response {
    respond(&app, &headers, None)
}

async fn add(State(app): State<App>, Query(q): Query<AddQuery>, headers: HeaderMap) -> Response {
    let item = q.item.filter(|i| !i.is_empty() && i.len() <= 64);
    respond(&app, &headers, Some(item.unwrap_or_else(|| "item".into())))
}

fn respond(app: &App, headers: &HeaderMap, add: Option<String>) -> Response {
    let presented = cart_cookie(headers);
    let (cart, fresh_cookie) = match &presented {
        Some(id) => (id.clone(), false),
        None => {
            let n = app.carts.next_id.fetch_add(1, Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            (format!("{}-{n}-{nanos:08x}", app.identity.name), true)
        }
    };
    let (items, state) = {
        let mut carts = app
            .carts
            .by_id
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let state = match (&presented, carts.contains_key(&cart)) {
            (None, _) => "new",
            (Some(_), true) => "kept",
            (Some(_), false) => "lost",
        };
        let items = carts.entry(cart.clone()).or_default();
        if let Some(item) = add {
            items.push(item);
        }
        (items.clone(), state)
    };
    let view = CartView {
        instance: app.identity.name.clone(),
        version: app.identity.version.clone(),
        cart: cart.clone(),
        items,
        state: state.into(),
    };
    let mut r = axum::Json(view).into_response();
    tag(&mut r, &app.identity);
    if fresh_cookie
        && let Ok(v) = HeaderValue::from_str(&format!(
            "{CART_COOKIE}={cart}; Path=/; HttpOnly; SameSite=Lax"
        ))
    {
        r.headers_mut().append(SET_COOKIE, v);
    }
    r
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn tag(r: &mut Response, identity: &Identity) {
    if let Ok(v) = HeaderValue::from_str(&identity.name) {
        r.headers_mut().insert(BACKEND_HEADER, v);
    }
}

/// The `cart` cookie of a request: every `Cookie` header is read (HTTP/1
/// may repeat it; HTTP/2 crumbs may arrive separately).
fn cart_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == CART_COOKIE)
        .map(|(_, v)| v.trim_matches('"').to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

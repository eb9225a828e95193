//! The clients a user of the demo would run: a browser-like HTTP session with
//! a cookie jar (it keeps whatever cookies Envoy and the cart set, nothing
//! else), and a gRPC session that keeps sticky's session header: it reads
//! `x-sticky-session` from the response metadata and sends it back, as a gRPC
//! client behind a proxy would (gRPC clients keep no cookies).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::cookie::CookieStore;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::BACKEND_HEADER;
use crate::cart::CartView;
use crate::proto::AddRequest;
use crate::proto::counter_client::CounterClient;

/// The session header sticky is configured with in every demo.
pub const SESSION_HEADER: &str = "x-sticky-session";

/// Per-request time limit of the demo clients.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What one successful step of a session saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The instance that answered.
    pub instance: String,
    /// The session's state on that instance after the step: items in the
    /// cart, or the counter's value. One more than before when the session
    /// kept its state.
    pub value: u64,
}

/// A browser-like session: one cookie jar, HTTP/1.1 keep-alive to Envoy.
pub struct CartSession {
    client: reqwest::Client,
    jar: Arc<reqwest::cookie::Jar>,
    base: reqwest::Url,
}

impl CartSession {
    /// A session with an empty cookie jar against Envoy at `envoy`.
    pub fn new(envoy: SocketAddr) -> Result<Self, String> {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(1)
            .build()
            .map_err(|e| e.to_string())?;
        let base = reqwest::Url::parse(&format!("http://{envoy}/")).map_err(|e| e.to_string())?;
        Ok(Self { client, jar, base })
    }

    /// Adds `item` to the cart; any status but 200 is an error.
    pub async fn add(&self, item: &str) -> Result<CartView, String> {
        let mut url = self
            .base
            .join("api/cart/items")
            .map_err(|e| e.to_string())?;
        url.query_pairs_mut().append_pair("item", item);
        let r = self
            .client
            .post(url)
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = r.status();
        if status != reqwest::StatusCode::OK {
            let flags = r
                .headers()
                .get("x-envoy-response-flags")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = r.text().await.unwrap_or_default();
            let body: String = body.chars().take(160).collect();
            return Err(format!(
                "HTTP {}: {}{}",
                status.as_u16(),
                body.trim(),
                flags.map(|f| format!(" [{f}]")).unwrap_or_default()
            ));
        }
        let header = r
            .headers()
            .get(BACKEND_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let view: CartView = r.json().await.map_err(|e| format!("bad body: {e}"))?;
        if header.as_deref() != Some(view.instance.as_str()) {
            return Err(format!(
                "x-backend {header:?} disagrees with the body's {}",
                view.instance
            ));
        }
        Ok(view)
    }

    /// The cookies the jar would send now (`name=value; ...`).
    pub fn cookies(&self) -> String {
        self.jar
            .cookies(&self.base)
            .and_then(|v| v.to_str().ok().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// A gRPC session in header mode: its own HTTP/2 connection to Envoy, a
/// client-chosen session id (the counter's key), and sticky's token once
/// Envoy handed one out.
pub struct CounterSession {
    client: CounterClient<Channel>,
    /// The client's session id.
    pub id: String,
    /// The `x-sticky-session` token last received.
    pub token: Option<String>,
}

impl CounterSession {
    /// Connects to Envoy at `envoy` over h2c.
    pub async fn connect(envoy: SocketAddr, id: impl Into<String>) -> Result<Self, String> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{envoy}"))
            .map_err(|e| e.to_string())?
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| format!("connect {envoy}: {e}"))?;
        Ok(Self {
            client: CounterClient::new(channel),
            id: id.into(),
            token: None,
        })
    }

    /// Adds `by` to the session's counter; returns the reply and the
    /// instance named in the response metadata.
    pub async fn add(&mut self, by: i64) -> Result<crate::proto::AddReply, String> {
        let mut request = tonic::Request::new(AddRequest {
            session: self.id.clone(),
            by,
        });
        if let Some(token) = &self.token
            && let Ok(v) = MetadataValue::try_from(token.as_str())
        {
            request.metadata_mut().insert(SESSION_HEADER, v);
        }
        let response = self
            .client
            .add(request)
            .await
            .map_err(|s| format!("gRPC {:?}: {}", s.code(), s.message()))?;
        if let Some(t) = response
            .metadata()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            self.token = Some(t.to_owned());
        }
        let header = response
            .metadata()
            .get(BACKEND_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let reply = response.into_inner();
        if header.as_deref() != Some(reply.instance.as_str()) {
            return Err(format!(
                "x-backend {header:?} disagrees with the body's {}",
                reply.instance
            ));
        }
        Ok(reply)
    }
}

/// Either kind of session, as the story drives them.
pub enum DemoSession {
    /// A browser with a cookie jar against the cart.
    Cart(CartSession),
    /// A gRPC client in header mode against the counter.
    Counter(CounterSession),
}

impl DemoSession {
    /// One request: add an item / add 1. Errors are request failures
    /// (transport, non-200, gRPC status), never a lost session.
    pub async fn step(&mut self) -> Result<Observation, String> {
        match self {
            DemoSession::Cart(s) => {
                let v = s.add("apple").await?;
                Ok(Observation {
                    instance: v.instance,
                    value: u64::try_from(v.items.len()).unwrap_or(u64::MAX),
                })
            }
            DemoSession::Counter(s) => {
                let r = s.add(1).await?;
                Ok(Observation {
                    instance: r.instance,
                    value: u64::try_from(r.value).unwrap_or(0),
                })
            }
        }
    }
}

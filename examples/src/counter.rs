//! The stateful gRPC demo: `sticky.demo.Counter/Add` keeps one counter per
//! session in the memory of the instance that served it. Replies name the
//! instance in the body and in the response metadata `x-backend`, and say
//! whether this instance knew the session (`known`).

use std::collections::HashMap;
use std::sync::Mutex;

use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use crate::proto::counter_server::{Counter, CounterServer};
use crate::proto::{AddReply, AddRequest};
use crate::{BACKEND_HEADER, Identity};

/// One instance's counters.
pub struct CounterService {
    identity: Identity,
    counters: Mutex<HashMap<String, i64>>,
}

impl CounterService {
    /// A fresh instance with no sessions.
    pub fn new(identity: Identity) -> Self {
        Self {
            identity,
            counters: Mutex::new(HashMap::new()),
        }
    }

    /// The tonic server for this instance.
    pub fn into_server(self) -> CounterServer<Self> {
        CounterServer::new(self)
    }
}

#[tonic::async_trait]
impl Counter for CounterService {
    async fn add(&self, request: Request<AddRequest>) -> Result<Response<AddReply>, Status> {
        let req = request.into_inner();
        if req.session.is_empty() || req.session.len() > 128 {
            return Err(Status::invalid_argument("session must be 1-128 bytes"));
        }
        let (value, known) = {
            let mut counters = self
                .counters
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let known = counters.contains_key(&req.session);
            let c = counters.entry(req.session.clone()).or_insert(0);
            *c = c.saturating_add(req.by);
            (*c, known)
        };
        let mut reply = Response::new(AddReply {
            instance: self.identity.name.clone(),
            version: self.identity.version.clone(),
            session: req.session,
            value,
            known,
        });
        if let Ok(v) = MetadataValue::try_from(self.identity.name.as_str()) {
            reply.metadata_mut().insert(BACKEND_HEADER, v);
        }
        Ok(reply)
    }
}

/// Serves the counter over h2c on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    identity: Identity,
) -> Result<(), tonic::transport::Error> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tonic::transport::Server::builder()
        .add_service(CounterService::new(identity).into_server())
        .serve_with_incoming(incoming)
        .await
}

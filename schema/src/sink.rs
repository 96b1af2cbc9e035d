//! The interface between sources and storage.
//!
//! A source decodes and normalizes what it receives into [`Event`]s and hands
//! them to an [`EventSink`] in batches. The sink answers once the batch is
//! durable; only then may the source acknowledge its sender. The sink's error
//! says whether retrying later can help ([`SinkErrorKind::Overloaded`],
//! [`SinkErrorKind::ShuttingDown`]) or not ([`SinkErrorKind::Storage`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{Event, EventIdGenerator};

/// A boxed future, so that the sink trait stays object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a sink gives back once a batch is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// How many events of the batch were made durable (all of them).
    pub durable: usize,
}

/// Where a source hands its batches.
pub trait EventSink: Send + Sync + 'static {
    /// The generator the events of a batch must take their ids from.
    fn ids(&self) -> &EventIdGenerator;

    /// Makes a batch durable. The future resolves once every event of the
    /// batch is on disk, or with an error when none of it could be kept.
    /// The batch is shared so that a source retrying after `Overloaded`
    /// hands it again without copying its events.
    fn submit(&self, batch: Arc<Vec<Event>>) -> BoxFuture<'static, Result<Receipt, SinkError>>;
}

/// Why a batch was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkErrorKind {
    /// Storage is behind; try again later (HTTP 503 with Retry-After).
    Overloaded,
    /// The process is stopping; try again later, probably elsewhere.
    ShuttingDown,
    /// Storage failed (disk full, unwritable directory); nothing was kept.
    Storage,
}

/// A batch that was not made durable, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    kind: SinkErrorKind,
    message: String,
}

impl SinkError {
    pub fn new(kind: SinkErrorKind, message: impl Into<String>) -> SinkError {
        SinkError { kind, message: message.into() }
    }

    pub fn kind(&self) -> SinkErrorKind {
        self.kind
    }
}

//! The records on the two topics, as JSON (small, readable with the Kafka console tools).

use serde::{Deserialize, Serialize};

use crate::ApplyOutcome;

/// One application, on the applications topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ApplyMessage {
    pub(crate) event_id: i64,
    pub(crate) user_id: i64,
    pub(crate) request_id: String,
    /// The producing process, so a worker in the same process answers in-process.
    pub(crate) origin: String,
}

/// One answer, on `<topic>.results`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ResultMessage {
    pub(crate) request_id: String,
    pub(crate) outcome: String,
    pub(crate) application_id: Option<i64>,
}

impl ResultMessage {
    pub(crate) fn new(request_id: &str, outcome: ApplyOutcome) -> Self {
        Self {
            request_id: request_id.to_owned(),
            outcome: outcome.as_str().to_owned(),
            application_id: outcome.application_id(),
        }
    }

    pub(crate) fn outcome(&self) -> Option<ApplyOutcome> {
        ApplyOutcome::from_stored(&self.outcome, self.application_id)
    }
}

//! A hub object that does not deserialize (a `CustomerStack` or `MemberCluster` stored under a
//! looser or newer schema): one log line and one Warning Event on it, and it is left alone, so
//! it never stops the watch that carries every other object.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::remote::{HUB_TIMEOUT, call};

/// The Event reason.
pub const REASON: &str = "InvalidObject";

/// The recorder of stacksmith's Events on the hub.
pub fn recorder(hub: Client) -> Recorder {
    let reporter = Reporter {
        controller: "stacksmith".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    Recorder::new(hub, reporter)
}

/// Logs and publishes (at most 1,000 characters of the error) that `invalid`, of `kind`, cannot
/// be read; a failure to publish is logged.
pub async fn report(recorder: &Recorder, kind: &str, invalid: &InvalidObject) {
    let metadata = &invalid.metadata;
    let name = metadata.name.as_deref().unwrap_or_default();
    let key = match metadata.namespace.as_deref() {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name.to_owned(),
    };
    tracing::warn!(kind, object = %key, error = %invalid.error, "a hub object that does not deserialize: left alone");
    let reference = ObjectReference {
        api_version: Some("stacksmith.io/v1alpha1".to_owned()),
        kind: Some(kind.to_owned()),
        name: metadata.name.clone(),
        namespace: metadata.namespace.clone(),
        uid: metadata.uid.clone(),
        resource_version: metadata.resource_version.clone(),
        ..Default::default()
    };
    let event = Event {
        type_: EventType::Warning,
        reason: REASON.to_owned(),
        note: Some(
            format!(
                "stacksmith cannot read this {kind} and leaves it alone: {}",
                invalid.error
            )
            .chars()
            .take(1000)
            .collect(),
        ),
        action: "Read".to_owned(),
        secondary: None,
    };
    if let Err(err) = call(HUB_TIMEOUT, recorder.publish(&event, &reference)).await {
        tracing::warn!(kind, object = %key, %err, "publishing an Event");
    }
}

//! The reconcile suite (`reconcile_e2e.rs`) on a test bed whose prometheus-operator runs with its
//! `StatusForConfigurationResources` feature gate on: ServiceMonitors and PrometheusRules then
//! report `status.bindings`, and their health is read from it instead of inferred.

include!("reconcile_e2e.rs");

//! The CRD YAML committed under `charts/` must be exactly what the Rust types generate.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use std::path::Path;

#[test]
fn committed_crds_match_the_rust_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../charts/stacksmith/crds/stacksmith.io.yaml");
    let committed =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let generated = stacksmith_api::crds::render_all().expect("render the CRDs");
    assert!(
        committed == generated,
        "{} is out of date with the Rust types; regenerate it with\n  cargo run -p stacksmith -- crds > charts/stacksmith/crds/stacksmith.io.yaml",
        path.display()
    );
}

#[test]
fn crds_are_yaml_and_carry_the_deletion_policy_enum() {
    // (The e2e tests install these CRDs on a real API server, which refuses malformed schemas.)
    let yaml = stacksmith_api::crds::render_all().expect("render the CRDs");
    for doc in yaml.split("\n---\n").skip(1) {
        let value: serde_yaml::Value = serde_yaml::from_str(doc).expect("valid YAML");
        assert_eq!(
            value["kind"],
            serde_yaml::Value::from("CustomResourceDefinition")
        );
    }
    assert!(
        yaml.contains("- Delete\n") && yaml.contains("- Orphan\n"),
        "deletionPolicy enum present"
    );
}

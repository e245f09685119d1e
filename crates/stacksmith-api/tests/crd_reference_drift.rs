//! `docs/crd-reference.md` must be exactly what the CRD schemas generate.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use std::path::Path;

#[test]
fn committed_crd_reference_matches_the_schemas() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/crd-reference.md");
    let committed =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let generated = stacksmith_api::crd_reference::render().expect("render the reference");
    if committed != generated {
        let first_difference = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || "one is a prefix of the other".to_owned(),
                |i| format!("first difference at line {}", i + 1),
            );
        panic!(
            "{} is out of date with the CRD schemas ({first_difference}); regenerate it with\n  cargo run -p stacksmith -- crds --reference > docs/crd-reference.md",
            path.display()
        );
    }
}

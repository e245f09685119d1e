//! Manifests as users keep them: reading files and directories into objects ([`read`]),
//! checking them as the hub and the operator would ([`check`]), and the schema check against the
//! CRDs' OpenAPI schema ([`schema`]).

pub mod check;
mod read;
pub mod schema;

pub use read::*;

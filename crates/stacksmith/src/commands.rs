//! One module per subcommand: what `stacksmith <command>` does.

pub mod demo;
pub mod diff;
pub mod health;
pub mod operator;
pub mod render;
pub mod shards;
pub mod status;
pub mod testbed;
pub mod validate;

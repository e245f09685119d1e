//! The propagation samples one by one, to find the slow ones in the operator's log: when
//! `STACKSMITH_BENCH_SAMPLES` names a file, each sample of sections 4 and 5 appends one line to
//! it, tab-separated: the run, the section, the stack (`namespace/name`), the wall-clock time the
//! bench made its change (RFC 3339, UTC, milliseconds: the operator's log uses the same clock)
//! and the latency in ms.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;

use k8s_openapi::jiff::Timestamp;

/// The environment variable naming the file.
pub const SAMPLES_ENV: &str = "STACKSMITH_BENCH_SAMPLES";

/// Where samples go (nowhere unless [`SAMPLES_ENV`] names a file).
pub struct SampleLog {
    file: Option<Mutex<File>>,
}

impl SampleLog {
    /// The file [`SAMPLES_ENV`] names, opened for appending; none when unset or unwritable (said
    /// once on stderr).
    pub fn from_env() -> Self {
        let file = std::env::var_os(SAMPLES_ENV)
            .map(PathBuf::from)
            .and_then(|path| {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|err| eprintln!("  cannot open {}: {err}", path.display()))
                    .ok()
            });
        SampleLog {
            file: file.map(Mutex::new),
        }
    }

    /// Appends one sample.
    pub fn record(&self, run: usize, section: u8, stack: &str, started: Timestamp, ms: f64) {
        let Some(file) = &self.file else {
            return;
        };
        if let Ok(mut file) = file.lock() {
            let _ = file.write_all(line(run, section, stack, started, ms).as_bytes());
        }
    }
}

/// One sample's line.
fn line(run: usize, section: u8, stack: &str, started: Timestamp, ms: f64) -> String {
    format!("{run}\t{section}\t{stack}\t{started:.3}\t{ms:.1}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_one_tab_separated_line_with_a_millisecond_timestamp() {
        let started: Timestamp = "2026-12-03T10:15:02.123456789Z".parse().unwrap();
        assert_eq!(
            line(1, 5, "bench-cold/cold-00021", started, 14850.04),
            "1\t5\tbench-cold/cold-00021\t2026-12-03T10:15:02.123Z\t14850.0\n"
        );
        let whole: Timestamp = "2026-12-03T10:15:02Z".parse().unwrap();
        assert!(line(1, 4, "a/b", whole, 1.0).contains("10:15:02.000Z"));
    }
}

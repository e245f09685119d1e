//! The operator image (`Containerfile`, `image/build.sh`), built for real and read back: a static
//! stacksmith is built (dev profile, into a target directory of this test's own), `image/build.sh`
//! builds the image from the Containerfile with buildah, and the OCI archive it writes is taken
//! apart: its name against the hub chart's default image, its config (entry point, command,
//! user, labels), the one layer's exact file tree, and the binary in it: statically linked, and
//! run from the image's file tree alone (chroot) as the image's user, down to the operator
//! resolving a host name from `/etc/hosts` and connecting to it.
//!
//! Needs root (buildah, chroot); `image/build.sh` installs buildah when it is missing. The static
//! build takes minutes on a fresh checkout (every dependency is compiled again, with glibc
//! linked in); later runs only rebuild what changed.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

const ENTRYPOINT: &[&str] = &["/usr/local/bin/stacksmith"];
const CMD: &[&str] = &["operator"];
const USER: &str = "65532:65532";

/// Runs of image/build.sh one at a time (it may install Debian packages).
static BUILD_SCRIPT: Mutex<()> = Mutex::new(());

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn run(command: &mut Command) -> Output {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn is_root() -> bool {
    let output = run(Command::new("id").arg("-u"));
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

/// `image/build.sh ARGS`, serialised.
fn build_script(args: &[&std::ffi::OsStr]) -> Output {
    let _one_at_a_time = BUILD_SCRIPT.lock().unwrap_or_else(|e| e.into_inner());
    Command::new("bash")
        .arg(repo().join("image/build.sh"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run image/build.sh")
}

/// A static stacksmith, built with the dev profile (no debug info) into a target directory of
/// this test's own: the `cargo test` running this holds the lock of the workspace's.
fn static_binary() -> PathBuf {
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("image-static");
    let started = Instant::now();
    run(
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .current_dir(repo())
            .args(["build", "--locked", "-p", "stacksmith"])
            .args(["--target", "x86_64-unknown-linux-gnu", "--target-dir"])
            .arg(&target_dir)
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env("CARGO_PROFILE_DEV_DEBUG", "false"),
    );
    eprintln!("static build: {:.0?}", started.elapsed());
    target_dir.join("x86_64-unknown-linux-gnu/debug/stacksmith")
}

/// What an ELF executable asks of the dynamic loader: its program interpreter (`PT_INTERP`)
/// and the shared libraries it needs (`DT_NEEDED` entries). Both empty: statically linked.
fn dynamic_needs(path: &Path) -> (bool, usize) {
    let elf = std::fs::read(path).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF", "{} is not ELF", path.display());
    assert_eq!((elf[4], elf[5]), (2, 1), "not a 64-bit little-endian ELF");
    let u16_at = |at: usize| u16::from_le_bytes(elf[at..at + 2].try_into().unwrap()) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    let (mut interpreter, mut needed) = (false, 0);
    for header in (0..phnum).map(|i| phoff + i * phentsize) {
        match u32_at(header) {
            3 => interpreter = true, // PT_INTERP
            2 => {
                // PT_DYNAMIC: (tag, value) pairs up to DT_NULL; DT_NEEDED is 1.
                let (offset, size) = (u64_at(header + 8), u64_at(header + 32));
                for entry in (offset..offset + size).step_by(16) {
                    match u64_at(entry) {
                        0 => break,
                        1 => needed += 1,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    (interpreter, needed)
}

/// A `key = "value"` line of a section of a TOML file (enough for Cargo.toml and these keys).
fn toml_value(text: &str, section: &str, key: &str) -> String {
    let mut in_section = false;
    for line in text.lines() {
        if line.starts_with('[') {
            in_section = line.trim() == section;
        } else if in_section
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            return v.trim().trim_matches('"').to_owned();
        }
    }
    panic!("no {key} in {section}")
}

/// The hub chart's default image: `image.repository`, and `image.tag` or else `appVersion`.
fn chart_default_image() -> String {
    let chart = repo().join("charts/stacksmith");
    let values: Value = serde_yaml::from_str(&read(&chart.join("values.yaml"))).unwrap();
    let meta: Value = serde_yaml::from_str(&read(&chart.join("Chart.yaml"))).unwrap();
    let tag = values["image"]["tag"].as_str().unwrap();
    let tag = if tag.is_empty() {
        meta["appVersion"].as_str().unwrap()
    } else {
        tag
    };
    format!("{}:{tag}", values["image"]["repository"].as_str().unwrap())
}

#[test]
fn chart_default_image_is_the_one_the_build_names() {
    // build.sh tags with the workspace version, under ghcr.io/stacksmith-io/stacksmith.
    assert_eq!(
        chart_default_image(),
        format!(
            "ghcr.io/stacksmith-io/stacksmith:{}",
            env!("CARGO_PKG_VERSION")
        )
    );
    // The Containerfile's own defaults (for builds without build.sh) follow the workspace.
    let containerfile = read(&repo().join("Containerfile"));
    let workspace = read(&repo().join("Cargo.toml"));
    assert!(
        containerfile.contains(&format!("\nARG VERSION={}\n", env!("CARGO_PKG_VERSION"))),
        "the Containerfile's ARG VERSION is not the workspace version"
    );
    let rust_version = toml_value(&workspace, "[workspace.package]", "rust-version");
    assert!(
        containerfile.contains(&format!("/rust:{rust_version}-")),
        "the Containerfile's Rust image is not of the workspace's rust-version {rust_version}"
    );
}

#[test]
fn build_refuses_a_dynamically_linked_binary() {
    let dynamic = Path::new(env!("CARGO_BIN_EXE_stacksmith"));
    assert!(
        dynamic_needs(dynamic).0,
        "cargo's own build of stacksmith is dynamic"
    );
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("image-refused");
    let output = build_script(&[
        "--binary".as_ref(),
        dynamic.as_ref(),
        "--out".as_ref(),
        out.as_ref(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "build.sh took a dynamic binary");
    assert!(stderr.contains("dynamically linked"), "{stderr}");
    assert!(
        !out.join(format!("stacksmith-{}.oci.tar", env!("CARGO_PKG_VERSION")))
            .exists()
    );
}

#[test]
fn image_runs_the_static_operator_as_non_root_with_oci_labels() {
    assert!(is_root(), "this test needs root: buildah and chroot");
    let binary = static_binary();
    let version = env!("CARGO_PKG_VERSION");
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);

    // Build the image.
    let started = Instant::now();
    let output = build_script(&[
        "--binary".as_ref(),
        binary.as_ref(),
        "--out".as_ref(),
        work.as_ref(),
    ]);
    assert!(
        output.status.success(),
        "image/build.sh: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("image build: {:.0?}", started.elapsed());
    let archive = work.join(format!("stacksmith-{version}.oci.tar"));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        archive.to_str().unwrap()
    );
    // The build script cleaned up its context and private store.
    let left: BTreeSet<String> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left,
        BTreeSet::from([
            format!("stacksmith-{version}.oci.tar"),
            format!("stacksmith-{version}.digest")
        ])
    );

    // The OCI image layout inside the archive; every blob is what its digest says.
    let layout = work.join("layout");
    std::fs::create_dir(&layout).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&layout));
    assert_eq!(
        json(&layout.join("oci-layout"))["imageLayoutVersion"],
        "1.0.0"
    );
    let blob = |descriptor: &Value| {
        let digest = descriptor["digest"].as_str().unwrap();
        let hex = digest.strip_prefix("sha256:").unwrap();
        let path = layout.join("blobs/sha256").join(hex);
        let sum = run(Command::new("sha256sum").arg(&path));
        assert!(
            String::from_utf8_lossy(&sum.stdout).starts_with(hex),
            "blob {digest} is corrupt"
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            descriptor["size"].as_u64().unwrap()
        );
        path
    };
    let index = json(&layout.join("index.json"));
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{index}");
    // Named exactly as the hub chart's default image.
    assert_eq!(
        manifests[0]["annotations"]["org.opencontainers.image.ref.name"],
        chart_default_image().as_str()
    );
    assert_eq!(
        read(&work.join(format!("stacksmith-{version}.digest"))).trim(),
        manifests[0]["digest"].as_str().unwrap()
    );
    let manifest = json(&blob(&manifests[0]));
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let config = json(&blob(&manifest["config"]));
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");

    // Entry point, command, user and labels.
    let run_config = &config["config"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap_or_else(|| panic!("not a list: {v}"))
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(strings(&run_config["Entrypoint"]), ENTRYPOINT);
    assert_eq!(strings(&run_config["Cmd"]), CMD);
    assert_eq!(run_config["User"], USER);
    let labels: BTreeMap<String, String> =
        serde_json::from_value(run_config["Labels"].clone()).unwrap();
    let workspace = read(&repo().join("Cargo.toml"));
    let source = toml_value(&workspace, "[workspace.package]", "repository");
    let expected = [
        ("org.opencontainers.image.title", "stacksmith"),
        ("org.opencontainers.image.source", source.as_str()),
        ("org.opencontainers.image.version", version),
        (
            "org.opencontainers.image.licenses",
            env!("CARGO_PKG_LICENSE"),
        ),
    ];
    for (key, value) in expected {
        assert_eq!(
            labels.get(key).map(String::as_str),
            Some(value),
            "label {key}"
        );
    }
    let description = labels
        .get("org.opencontainers.image.description")
        .expect("a description label");
    assert!(description.contains("operator"), "{description}");
    assert_eq!(
        labels.len(),
        5,
        "labels other than the OCI ones: {labels:?}"
    );

    // One layer, on nothing: exactly this file tree, owned by root.
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    let rootfs = work.join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    run(Command::new("tar")
        .args([
            "--numeric-owner",
            "--same-owner",
            "--same-permissions",
            "-xf",
        ])
        .arg(blob(&layers[0]))
        .arg("-C")
        .arg(&rootfs));
    let mut tree = BTreeMap::new();
    let mut pending = vec![rootfs.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let name = path.strip_prefix(&rootfs).unwrap().display().to_string();
            assert_eq!((meta.uid(), meta.gid()), (0, 0), "{name} is not root's");
            tree.insert(name, meta.permissions().mode() & 0o7777);
            if meta.is_dir() {
                pending.push(path);
            }
        }
    }
    let expected_tree: BTreeMap<String, u32> = [
        ("etc", 0o755),
        ("etc/group", 0o644),
        ("etc/nsswitch.conf", 0o644),
        ("etc/passwd", 0o644),
        ("etc/ssl", 0o755),
        ("etc/ssl/certs", 0o755),
        ("etc/ssl/certs/ca-certificates.crt", 0o644),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("usr/local", 0o755),
        ("usr/local/bin", 0o755),
        ("usr/local/bin/stacksmith", 0o755),
    ]
    .into_iter()
    .map(|(name, mode)| (name.to_owned(), mode))
    .collect();
    assert_eq!(tree, expected_tree);
    assert!(read(&rootfs.join("etc/passwd")).contains(":65532:65532:"));

    // The binary: statically linked, and it runs from the image's files alone, as its user.
    let entrypoint = rootfs.join(ENTRYPOINT[0].trim_start_matches('/'));
    assert_eq!(
        dynamic_needs(&entrypoint),
        (false, 0),
        "the binary is not static"
    );
    let in_image = |args: &[&str]| {
        let mut command = Command::new("timeout");
        command
            .arg("60")
            .arg("chroot")
            .arg(format!("--userspec={USER}"))
            .arg(&rootfs)
            .args(ENTRYPOINT)
            .args(args);
        command
    };
    let version_line = run(&mut in_image(&["--version"])).stdout;
    assert_eq!(
        String::from_utf8_lossy(&version_line).trim(),
        format!("stacksmith {version}")
    );
    let command: Vec<&str> = CMD.iter().copied().chain(["--help"]).collect();
    let help = String::from_utf8_lossy(&run(&mut in_image(&command)).stdout).into_owned();
    assert!(
        help.contains("--metrics-addr"),
        "not the operator's help: {help}"
    );

    // The operator resolves a host name as in a pod (the kubelet mounts /etc/hosts) and
    // connects: the static glibc needs no NSS library for files and DNS.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::fs::write(
        rootfs.join("etc/hosts"),
        "127.0.0.1 hub.image-test.example\n",
    )
    .unwrap();
    std::fs::write(
        rootfs.join("tmp/hub.kubeconfig"),
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: hub\n  cluster:\n    server: \
             https://hub.image-test.example:{port}\ncontexts:\n- name: hub\n  context: {{cluster: \
             hub, user: hub}}\ncurrent-context: hub\nusers:\n- name: hub\n  user: {{token: t}}\n"
        ),
    )
    .unwrap();
    let mut operator = in_image(&[CMD[0], "--kubeconfig", "/tmp/hub.kubeconfig"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let connected = loop {
        match listener.accept() {
            Ok((stream, _)) => {
                drop(stream);
                break true;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                if operator.try_wait().unwrap().is_some() {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    drop(listener); // a retry is refused rather than left waiting for a TLS answer
    let result = operator.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        connected,
        "the operator in the image never connected: {stderr}"
    );
    // No hub behind the port: it says so and exits 2.
    assert_eq!(result.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("the hub does not answer"), "{stderr}");

    std::fs::remove_dir_all(&work).unwrap();
}

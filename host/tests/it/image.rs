//! Checks the `Dockerfile` and `.dockerignore` that build the event-host
//! image: built with the same cargo and rustup commands CI runs, from the
//! sources alone, into a slim image that runs the binary it built, as a
//! non-root user, with the handlers the build script builds and only
//! settings the host reads; and that its health check tells a ready host
//! from one that is not.
//!
//! No Docker engine is needed: the Dockerfile is parsed (parse-dockerfile)
//! and cross-checked with the host's own settings, `host/build.rs`'s
//! handler crates and `.ci/run`. The health check's command is run for real
//! against a host started in this process.

use std::collections::BTreeSet;
use std::path::PathBuf;

use event_host::Config;

use crate::compose::repo_path;
use crate::support::dockerfile::{Stage, builder_and_runtime};
use crate::support::files::{DockerIgnore, shell_commands};
use crate::support::settings::{config_from, host_settings};
use crate::support::{self, TestHost, install_demo_handlers, temp_handlers_dir};

#[path = "../../src/handler_crates.rs"]
#[allow(dead_code)]
mod handler_crates;

/// Every simple command of `.ci/run`.
fn ci_commands() -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(repo_path(".ci/run")).expect("reading .ci/run");
    shell_commands(&text)
}

/// The words of one `step "NAME"` … `done_step` block of `.ci/run`.
fn ci_step_words(name: &str) -> BTreeSet<String> {
    let commands = ci_commands();
    let start = commands
        .iter()
        .position(|c| c.first().is_some_and(|w| w == "step") && c.get(1).is_some_and(|w| w == name))
        .unwrap_or_else(|| panic!(".ci/run has no step \"{name}\""));
    let end = commands[start..]
        .iter()
        .position(|c| c.first().is_some_and(|w| w == "done_step"))
        .map_or(commands.len(), |n| start + n);
    commands[start..end].iter().flatten().cloned().collect()
}

/// The packages a stage's `apt-get install` commands install.
fn apt_packages(stage: &Stage) -> BTreeSet<String> {
    stage
        .runs
        .iter()
        .flat_map(|(_, commands)| commands)
        .filter(|c| c.starts_with(&["apt-get".into(), "install".into()]))
        .flat_map(|c| c[2..].iter().filter(|w| !w.starts_with('-')).cloned())
        .collect()
}

/// `user[:group]` as numbers, or a panic naming what is not numeric.
fn numeric_owner(owner: &str) -> (u32, Option<u32>) {
    let id = |s: &str| {
        s.parse().unwrap_or_else(|_| {
            panic!("`{owner}` is not numeric: Kubernetes' runAsNonRoot needs a uid")
        })
    };
    match owner.split_once(':') {
        Some((user, group)) => (id(user), Some(id(group))),
        None => (id(owner), None),
    }
}

#[test]
fn the_image_is_built_in_a_rust_stage_and_runs_in_a_slim_one_of_the_same_debian() {
    let (builder, runtime) = builder_and_runtime();
    let (image, tag) = builder
        .base
        .split_once(':')
        .expect("the builder's image has a tag");
    assert_eq!(image, "rust", "the official Rust image");
    let (_, builder_debian) = tag.split_once('-').expect("rust:VERSION-DEBIAN");
    assert_eq!(runtime.base, format!("debian:{builder_debian}-slim"));
    // The binary links the builder's glibc and OpenSSL: the same release.
    let name = builder.name.as_deref().expect("the build stage is named");
    assert!(
        runtime
            .copies
            .iter()
            .all(|c| c.from.as_deref() == Some(name)),
        "the runtime takes its files from the build stage only: {:?}",
        runtime.copies
    );
}

#[test]
fn the_builder_has_the_toolchain_the_workspace_is_built_with() {
    let (builder, _) = builder_and_runtime();
    let version = builder.base["rust:".len()..]
        .split('-')
        .next()
        .unwrap_or_default();
    let workspace: toml::Table =
        toml::from_str(&std::fs::read_to_string(repo_path("Cargo.toml")).unwrap()).unwrap();
    let rust_version = workspace["workspace"]["package"]["rust-version"].as_str();
    assert_eq!(
        Some(version),
        rust_version,
        "the image's Rust is the workspace's rust-version"
    );
    // rust-toolchain.toml names a channel; unless it is the image's version,
    // rustup would install that channel instead: the builder must say which.
    let toolchain: toml::Table =
        toml::from_str(&std::fs::read_to_string(repo_path("rust-toolchain.toml")).unwrap())
            .unwrap();
    let channel = toolchain["toolchain"]["channel"]
        .as_str()
        .unwrap_or_default();
    if channel != version {
        assert_eq!(
            builder.env.get("RUSTUP_TOOLCHAIN").map(String::as_str),
            Some("${RUST_VERSION}"),
            "rust-toolchain.toml asks for `{channel}`: pin the image's own toolchain"
        );
    }
}

#[test]
fn every_cargo_and_rustup_command_of_the_image_is_one_ci_runs() {
    let ci = ci_commands();
    let (builder, runtime) = builder_and_runtime();
    let built: Vec<&Vec<String>> = [&builder, &runtime]
        .iter()
        .flat_map(|s| &s.runs)
        .flat_map(|(_, commands)| commands)
        .filter(|c| c[0] == "cargo" || c[0] == "rustup")
        .collect();
    for command in &built {
        assert!(
            ci.contains(command),
            "the Dockerfile runs `{}`, which .ci/run does not",
            command.join(" ")
        );
    }
    let release = [
        "cargo",
        "build",
        "--release",
        "--locked",
        "-p",
        "event-host",
    ]
    .map(String::from);
    assert!(
        built.contains(&&release.to_vec()),
        "the image builds the host: {built:?}"
    );
    let target = ["rustup", "target", "add", handler_crates::TARGET].map(String::from);
    assert!(
        built.contains(&&target.to_vec()),
        "the handlers' target is added before the build: {built:?}"
    );
}

#[test]
fn the_builder_installs_only_what_ci_installs() {
    let (builder, _) = builder_and_runtime();
    let packages = apt_packages(&builder);
    assert!(
        packages.contains("libssl-dev"),
        "rdkafka's TLS links OpenSSL: {packages:?}"
    );
    let ci = ci_step_words("build tools");
    let missing: Vec<&String> = packages.iter().filter(|p| !ci.contains(*p)).collect();
    assert!(
        missing.is_empty(),
        ".ci/run's build tools step does not install {missing:?}"
    );
}

#[test]
fn the_image_runs_the_binary_it_built_as_a_non_root_user_owning_its_folders() {
    let (builder, runtime) = builder_and_runtime();
    let entrypoint = runtime.entrypoint.as_ref().expect("an ENTRYPOINT");
    let binary = &entrypoint[0];
    let source = runtime
        .copies
        .iter()
        .find(|c| c.dest == *binary)
        .unwrap_or_else(|| panic!("nothing is copied to {binary}"));
    let workdir = builder
        .workdir
        .as_deref()
        .expect("the builder has a WORKDIR");
    assert_eq!(
        source.sources,
        [format!("{workdir}/target/release/event-host")]
    );

    let (uid, gid) = numeric_owner(runtime.user.as_deref().expect("a USER"));
    assert_ne!(uid, 0, "not root");
    assert_ne!(gid, Some(0), "not root's group");
    let created = runtime.runs.iter().flat_map(|(_, c)| c).any(|c| {
        c[0] == "useradd"
            && c.windows(2)
                .any(|w| w[0] == "--uid" && w[1] == uid.to_string())
    });
    assert!(created, "the image creates user {uid}");
    // Uploads write to the handlers folder; compiled handlers go to the cache.
    let owner = format!("{uid}:{}", gid.unwrap_or(uid));
    let chowned: Vec<&String> = runtime
        .runs
        .iter()
        .flat_map(|(_, c)| c)
        .filter(|c| c[0] == "chown" && c.get(1) == Some(&owner))
        .flat_map(|c| &c[2..])
        .collect();
    for setting in ["HANDLERS_DIR", "COMPILE_CACHE_DIR"] {
        let dir = &runtime.env[setting];
        assert!(
            chowned.contains(&dir),
            "{setting} {dir} is not owned by {owner}: {chowned:?}"
        );
    }
    let handlers = runtime
        .copies
        .iter()
        .filter(|c| c.sources.iter().any(|s| s.ends_with(".wasm")));
    for copy in handlers {
        assert_eq!(
            copy.chown.as_deref(),
            Some(owner.as_str()),
            "uploads replace them"
        );
    }
}

#[test]
fn every_variable_the_image_sets_is_a_host_setting_it_accepts() {
    let (_, runtime) = builder_and_runtime();
    let settings = host_settings();
    for name in runtime.env.keys() {
        assert!(
            settings.contains(name),
            "the image sets {name}, which the host does not read"
        );
    }
    let config = config_from(&runtime.env);
    assert!(
        config.bind_address.is_unspecified(),
        "published ports need more than loopback"
    );
    assert_eq!(config.handlers_dir, PathBuf::from("/app/handlers"));
    assert_eq!(config.compile_cache(), Some(PathBuf::from("/app/cache")));
    assert_eq!(runtime.workdir.as_deref(), Some("/app"));
}

#[test]
fn the_image_exposes_the_port_the_host_listens_on() {
    let (_, runtime) = builder_and_runtime();
    assert_eq!(runtime.expose, [config_from(&runtime.env).port.to_string()]);
}

#[test]
fn the_image_carries_the_handlers_the_build_script_builds() {
    let (builder, runtime) = builder_and_runtime();
    let crates = handler_crates::handler_crates(&repo_path("handlers")).expect("reading handlers/");
    let built: BTreeSet<String> = crates
        .iter()
        .map(|(name, _)| {
            format!(
                "{}/handlers/{name}.wasm",
                builder.workdir.as_deref().unwrap_or("")
            )
        })
        .collect();
    let copy = runtime
        .copies
        .iter()
        .find(|c| c.sources.iter().any(|s| s.ends_with(".wasm")))
        .expect("the image has handlers");
    let copied: BTreeSet<String> = copy.sources.iter().cloned().collect();
    assert_eq!(
        copied, built,
        "the image's handlers are the workspace's handler crates"
    );
    assert_eq!(copy.dest.trim_end_matches('/'), runtime.env["HANDLERS_DIR"]);
}

#[test]
fn the_build_context_has_the_sources_and_not_the_build_output() {
    let path = repo_path(".dockerignore");
    let ignore =
        DockerIgnore::parse(&std::fs::read_to_string(&path).expect("reading .dockerignore"));
    let output = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(repo_path("."))
        .output()
        .expect("running git ls-files");
    assert!(output.status.success(), "git ls-files failed");
    let tracked = String::from_utf8(output.stdout).expect("UTF-8 paths");
    let tracked: Vec<&str> = tracked.split('\0').filter(|p| !p.is_empty()).collect();
    assert!(tracked.contains(&"host/build.rs"));
    for file in &tracked {
        assert!(
            !ignore.excludes(file),
            ".dockerignore leaves out {file}, which git tracks"
        );
    }
    for built in [
        ".git/HEAD",
        "target/release/event-host",
        "host/target/debug/build",
        "handlers/user-handler.wasm",
        "handlers/python-audit.wasm.tmp",
        "host/tests/ui/node_modules/playwright-core/package.json",
    ] {
        assert!(ignore.excludes(built), ".dockerignore sends {built}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_health_check_passes_on_a_ready_host_only() {
    let (_, runtime) = builder_and_runtime();
    let (options, command) = runtime.healthcheck.expect("a HEALTHCHECK");
    assert!(
        options.contains_key("start-period"),
        "the first start compiles the handlers"
    );
    // Without PORT it asks the port the host listens on by default.
    let default = format!("${{PORT:-{}}}", Config::defaults().port);
    assert!(command.iter().any(|a| a.contains(&default)), "{command:?}");
    let check = |port: u16| {
        let command = command.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(&command[0])
                .args(&command[1..])
                .env("PORT", port.to_string())
                .output()
                .expect("running the health check")
                .status
                .success()
        })
    };

    let dir = temp_handlers_dir("image-health");
    let names: Vec<String> = handler_crates::handler_crates(&repo_path("handlers"))
        .expect("reading handlers/")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    install_demo_handlers(&dir, &names.iter().map(String::as_str).collect::<Vec<_>>());
    let host = TestHost::start(support::config(&dir, None)).await;
    assert!(
        check(host.addr.port()).await.unwrap(),
        "a ready host is healthy"
    );
    host.stop().await;
    assert!(
        !check(support::free_port()).await.unwrap(),
        "nothing listening"
    );

    // A host that answers, but is not ready (503 while its consumers join).
    let starting = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = starting.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Write};
        let (stream, _) = starting.accept().expect("the health check connects");
        // The whole request first: closing with it unread would reset the
        // connection, and the check would fail for that instead.
        let mut request = BufReader::new(&stream);
        let mut line = String::new();
        while request.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
            line.clear();
        }
        let answer = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";
        (&stream).write_all(answer).expect("answering it");
    });
    assert!(
        !check(port).await.unwrap(),
        "a starting host is not healthy"
    );
}

//! `event-host new NAME`: a new handler crate under `handlers/`, part of the
//! workspace through its `handlers/*` glob, that builds on the first try
//! and has a native test of its `handle`. With `--dev` running, the host
//! builds and loads it as soon as its files appear.

use std::path::{Path, PathBuf};

use crate::handler_crates;

/// Crates under `handlers/` that are not handlers: a new one may not take
/// their names.
const RESERVED: &[&str] = &["sdk", "sdk-macros", "demo-common"];

/// What the new handler subscribes to.
#[derive(Debug, Clone)]
pub struct Template {
    pub name: String,
    pub topic: String,
    pub event_type: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "{0:?} is not a handler name: use lowercase letters, digits and single dashes, starting with a letter (e.g. audit-log)"
    )]
    BadName(String),
    #[error("{0:?} is the name of a library crate under handlers/; choose another")]
    Reserved(String),
    #[error("{0:?} is not an event type for the template: use A-Z, 0-9 and _ (e.g. ORDER_PLACED)")]
    BadEventType(String),
    #[error("topic {0:?} {1}")]
    BadTopic(String, crate::event::NameError),
    #[error(
        "{} has no handlers/sdk: run this from the event-host repository, or pass --workspace-dir",
        .0.display()
    )]
    NotTheWorkspace(PathBuf),
    #[error("{} already exists", .0.display())]
    Exists(PathBuf),
    #[error("cannot write {}: {error}", .path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl Template {
    /// Checks the names before anything is written.
    pub fn new(name: &str, topic: &str, event_type: &str) -> Result<Self, ScaffoldError> {
        let valid_name = name.starts_with(|c: char| c.is_ascii_lowercase())
            && !name.ends_with('-')
            && !name.contains("--")
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid_name {
            return Err(ScaffoldError::BadName(name.into()));
        }
        if RESERVED.contains(&name) {
            return Err(ScaffoldError::Reserved(name.into()));
        }
        crate::event::Topic::parse(topic).map_err(|e| ScaffoldError::BadTopic(topic.into(), e))?;
        let valid_type = event_type.starts_with(|c: char| c.is_ascii_uppercase())
            && event_type
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !valid_type {
            return Err(ScaffoldError::BadEventType(event_type.into()));
        }
        Ok(Self {
            name: name.into(),
            topic: topic.into(),
            event_type: event_type.into(),
        })
    }

    /// Writes `handlers/NAME/` under `workspace` and returns its path. The
    /// manifest is written last, so a watcher sees a complete crate.
    pub fn write(&self, workspace: &Path) -> Result<PathBuf, ScaffoldError> {
        let handlers = workspace.join("handlers");
        if !handlers.join("sdk").join("Cargo.toml").is_file() {
            return Err(ScaffoldError::NotTheWorkspace(workspace.to_path_buf()));
        }
        let dir = handlers.join(&self.name);
        if dir.exists() {
            return Err(ScaffoldError::Exists(dir));
        }
        let write = |path: PathBuf, text: String| {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|error| ScaffoldError::Write {
                    path: parent.to_path_buf(),
                    error,
                })?;
            }
            std::fs::write(&path, text).map_err(|error| ScaffoldError::Write { path, error })
        };
        write(dir.join("src").join("lib.rs"), self.lib_rs())?;
        write(dir.join("Cargo.toml"), self.cargo_toml())?;
        Ok(dir)
    }

    fn cargo_toml(&self) -> String {
        format!(
            r#"[package]
name = "{name}"
version = "0.1.0"
edition.workspace = true
rust-version.workspace = true
license.workspace = true
publish.workspace = true

# A handler is a cdylib: host/build.rs (and `--dev`) build it into
# handlers/{name}.wasm for the {target} target. By hand:
# cargo build --profile {profile} --target {target} -p {name}
[lib]
crate-type = ["cdylib"]

[dependencies]
handler-sdk = {{ path = "../sdk" }}
serde.workspace = true

[dev-dependencies]
serde_json.workspace = true
"#,
            name = self.name,
            profile = handler_crates::Profile::Release.name(),
            target = handler_crates::TARGET,
        )
    }

    fn lib_rs(&self) -> String {
        let variant = camel_case(&self.event_type);
        format!(
            r#"//! {name}: handles `{event_type}` events on `{topic}`.
//!
//! Edit `on_event`; with `cargo run -- --dev` running, saving this file
//! rebuilds the handler and the host serves the new version. Test it with
//! `cargo test -p {name}`.

use handler_sdk::{{Context, Events, HandlerError, handler}};
use serde::Deserialize;

/// The events this handler takes, by type: `{variant}` is `{event_type}`,
/// its data parsed into `Data`. Add a variant to take another type.
#[derive(Events)]
enum Incoming {{
    #[event("{event_type}")]
    {variant}(Data),
}}

/// The part of the event's `data` this handler reads.
#[derive(Deserialize)]
struct Data {{
    name: String,
}}

#[handler(topics = ["{topic}"])]
fn on_event(event: Incoming, ctx: &Context) -> Result<(), HandlerError> {{
    let Incoming::{variant}(data) = event;
    let user = ctx.user_id().unwrap_or("anonymous");
    handler_sdk::info!("{name}: {{}} (user {{user}})", data.name);
    // To publish: handler_sdk::publish("topic", OutgoingEvent::new("TYPE").data(&value)?)?;
    Ok(())
}}

#[cfg(test)]
mod tests {{
    use super::Handler;
    use handler_sdk::testing::{{self, Level}};
    use serde_json::json;

    #[test]
    fn it_logs_the_name() {{
        let outcome = testing::event("{event_type}")
            .user_id("u-1")
            .data(json!({{"name": "Ada"}}))
            .handle::<Handler>();
        assert_eq!(outcome.result, Ok(()));
        assert_eq!(outcome.lines(Level::Info), ["{name}: Ada (user u-1)"]);
    }}

    #[test]
    fn data_without_a_name_is_fatal() {{
        let outcome = testing::event("{event_type}")
            .data(json!({{}}))
            .handle::<Handler>();
        assert!(outcome.fatal().contains("name"), "{{outcome:?}}");
    }}
}}
"#,
            name = self.name,
            topic = self.topic,
            event_type = self.event_type,
        )
    }
}

/// `ORDER_PLACED` → `OrderPlaced`.
fn camel_case(event_type: &str) -> String {
    let mut out = String::new();
    for word in event_type.split('_').filter(|w| !w.is_empty()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.push(first);
            out.extend(chars.flat_map(char::to_lowercase));
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.is_empty() {
        out.insert_str(0, "Event");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_anything_is_written() {
        assert!(Template::new("audit-log", "user-events", "USER_REGISTERED").is_ok());
        for bad in ["Audit", "1x", "a--b", "a-", "a_b", "", "a b"] {
            assert!(
                matches!(Template::new(bad, "t", "X"), Err(ScaffoldError::BadName(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            Template::new("sdk", "t", "X"),
            Err(ScaffoldError::Reserved(_))
        ));
        assert!(matches!(
            Template::new("a", "bad topic", "X"),
            Err(ScaffoldError::BadTopic(..))
        ));
        assert!(matches!(
            Template::new("a", "t", "order_placed"),
            Err(ScaffoldError::BadEventType(_))
        ));
    }

    #[test]
    fn event_types_become_variant_names() {
        assert_eq!(camel_case("ORDER_PLACED"), "OrderPlaced");
        assert_eq!(camel_case("PING"), "Ping");
        assert_eq!(camel_case("V2_READY"), "V2Ready");
        assert_eq!(camel_case("2FA_SENT"), "Event2faSent");
    }

    #[test]
    fn it_writes_a_crate_once_and_only_in_the_workspace() {
        let root = std::env::temp_dir().join(format!("scaffold-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let t = Template::new("audit", "user-events", "USER_REGISTERED").unwrap();
        assert!(matches!(
            t.write(&root),
            Err(ScaffoldError::NotTheWorkspace(_))
        ));
        std::fs::create_dir_all(root.join("handlers/sdk")).unwrap();
        std::fs::write(root.join("handlers/sdk/Cargo.toml"), "").unwrap();
        let dir = t.write(&root).unwrap();
        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        assert!(lib.contains("UserRegistered(Data)"), "{lib}");
        assert!(lib.contains(r#"topics = ["user-events"]"#), "{lib}");
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(manifest.contains(r#"name = "audit""#));
        assert!(matches!(t.write(&root), Err(ScaffoldError::Exists(_))));
        let _ = std::fs::remove_dir_all(&root);
    }
}

//! librdkafka properties given by the operator, for every Kafka client of
//! the host (its producer, its consumers, its admin client): how a host
//! reaches a secured cluster (`security.protocol`, `sasl.*`, `ssl.*`) or
//! names itself (`client.id`).
//!
//! One convention, two sources, the later winning:
//! - a file named by `KAFKA_CONFIG_FILE`, in the Java properties format
//!   Kafka's own clients read (`name=value` lines, `#` or `!` comments): the
//!   `client.properties` a managed Kafka hands out works as it is;
//! - environment variables `KAFKA_CLIENT_<NAME>`: the property name upper
//!   case, dots as `_` and an underscore as `__`
//!   (`KAFKA_CLIENT_SASL_PASSWORD` is `sasl.password`).
//!
//! Every property is checked by librdkafka itself at start-up, so an unknown
//! name or a bad value stops the host with a message naming it. Properties
//! the host sets itself (its offsets, its groups, what a setting of its own
//! governs) are refused: overriding them would break its delivery promise.
//! Secret values never appear in logs, errors or the API (see
//! [`is_secret`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use rdkafka::ClientConfig;

/// The prefix of the environment variables that carry properties.
pub const ENV_PREFIX: &str = "KAFKA_CLIENT_";

/// What is shown in place of a secret value.
pub const REDACTED: &str = "[redacted]";

/// Properties that hold secrets: librdkafka's sensitive ones, and by rule
/// any whose name says password, secret, passphrase or private key.
pub fn is_secret(name: &str) -> bool {
    const SENSITIVE: &[&str] = &[
        "sasl.password",
        "sasl.oauthbearer.config",
        "sasl.oauthbearer.client.secret",
        "ssl.key.password",
        "ssl.key.pem",
        "ssl.keystore.password",
        "ssl_key",
    ];
    let name = name.to_ascii_lowercase();
    SENSITIVE.contains(&name.as_str())
        || ["password", "secret", "passphrase", "private.key", "key.pem"]
            .iter()
            .any(|word| name.contains(word))
}

/// Why a property may not be given: the host sets it, and what to use
/// instead.
fn host_owned(name: &str) -> Option<&'static str> {
    Some(match name {
        "bootstrap.servers" | "metadata.broker.list" => {
            "set KAFKA_BROKERS (or bootstrap.servers in KAFKA_CONFIG_FILE)"
        }
        "group.id" | "group.instance.id" => "each handler's consumer group is named after it",
        "enable.auto.commit" | "enable.auto.offset.store" | "auto.commit.interval.ms" => {
            "the host stores offsets only once an event is done (at-least-once delivery)"
        }
        "enable.idempotence" | "acks" | "transactional.id" => {
            "the host's producer is idempotent and waits for every replica"
        }
        "enable.partition.eof" | "allow.auto.create.topics" => "the host relies on its value",
        "auto.offset.reset" => "set OFFSET_RESET",
        "session.timeout.ms" => "set SESSION_TIMEOUT_MS",
        "fetch.wait.max.ms" => "set FETCH_WAIT_MS",
        "queued.max.messages.kbytes" => "set PREFETCH_KIB",
        "statistics.interval.ms" => "set LAG_INTERVAL_MS",
        "linger.ms" | "queue.buffering.max.ms" => "set LINGER_MS",
        "message.timeout.ms" | "delivery.timeout.ms" => "set PUBLISH_TIMEOUT_MS",
        _ => return None,
    })
}

/// Where a property was given, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File { path: PathBuf, line: usize },
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { path, line } => write!(f, "{}:{line}", path.display()),
            Self::Env(var) => write!(f, "{var}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PropertyError {
    #[error("cannot read KAFKA_CONFIG_FILE {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: expected name=value")]
    Syntax { origin: Origin },
    #[error("{origin}: {name} cannot be set: {why}")]
    HostOwned {
        origin: Origin,
        name: String,
        why: &'static str,
    },
    #[error("{origin}: {name}: {message}")]
    Invalid {
        origin: Origin,
        name: String,
        /// librdkafka's words, with a secret value taken out.
        message: String,
    },
}

/// `KAFKA_CLIENT_*` variables as found in the environment; their values
/// are shown redacted where secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientVars(pub Vec<(String, String)>);

impl ClientVars {
    /// The `KAFKA_CLIENT_*` variables of this process.
    pub fn from_env() -> Self {
        Self(
            std::env::vars()
                .filter(|(k, _)| k.starts_with(ENV_PREFIX))
                .collect(),
        )
    }
}

impl fmt::Debug for ClientVars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.0.iter().map(|(var, value)| {
            let secret = property_of_var(var).is_some_and(|n| is_secret(&n));
            (var, if secret { REDACTED } else { value.as_str() })
        });
        f.debug_map().entries(shown).finish()
    }
}

/// The property a `KAFKA_CLIENT_*` variable names.
fn property_of_var(var: &str) -> Option<String> {
    let rest = var.strip_prefix(ENV_PREFIX)?;
    (!rest.is_empty()).then(|| {
        rest.to_ascii_lowercase()
            .split("__")
            .map(|part| part.replace('_', "."))
            .collect::<Vec<_>>()
            .join("_")
    })
}

#[derive(Debug, Clone)]
struct Property {
    value: String,
    origin: Origin,
}

/// The operator's librdkafka properties, checked.
#[derive(Debug, Clone, Default)]
pub struct KafkaProperties {
    properties: BTreeMap<String, Property>,
    /// `bootstrap.servers` from the file, used when `KAFKA_BROKERS` is not
    /// set (a managed Kafka's `client.properties` names its servers).
    bootstrap_servers: Option<String>,
}

impl KafkaProperties {
    /// Reads `file` (if any), then `vars` on top, and checks every
    /// property with librdkafka.
    pub fn load(file: Option<&Path>, vars: &ClientVars) -> Result<Self, PropertyError> {
        let mut properties = BTreeMap::new();
        let mut bootstrap_servers = None;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| PropertyError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            for (name, property) in parse_file(path, &text)? {
                if name == "bootstrap.servers" {
                    bootstrap_servers = Some(property.value);
                    continue;
                }
                properties.insert(name, property);
            }
        }
        for (var, value) in &vars.0 {
            let origin = Origin::Env(var.clone());
            let name = property_of_var(var).ok_or(PropertyError::Syntax {
                origin: origin.clone(),
            })?;
            let value = value.clone();
            properties.insert(name, Property { value, origin });
        }
        let this = Self {
            properties,
            bootstrap_servers,
        };
        this.check()?;
        Ok(this)
    }

    /// The file's `bootstrap.servers`, if it names them.
    pub fn bootstrap_servers(&self) -> Option<&str> {
        self.bootstrap_servers.as_deref()
    }

    fn check(&self) -> Result<(), PropertyError> {
        for (name, p) in &self.properties {
            if let Some(why) = host_owned(name) {
                return Err(PropertyError::HostOwned {
                    origin: p.origin.clone(),
                    name: name.clone(),
                    why,
                });
            }
            // librdkafka checks names and values as they are set.
            let mut one = ClientConfig::new();
            one.set(name, &p.value);
            if let Err(e) = one.create_native_config() {
                let mut message = match e {
                    rdkafka::error::KafkaError::ClientConfig(_, desc, _, _) => desc,
                    other => other.to_string(),
                };
                if is_secret(name) && !p.value.is_empty() {
                    message = message.replace(&p.value, REDACTED);
                }
                return Err(PropertyError::Invalid {
                    origin: p.origin.clone(),
                    name: name.clone(),
                    message,
                });
            }
        }
        Ok(())
    }

    /// The base of every client the host makes: the bootstrap servers and
    /// these properties.
    pub fn client(&self, bootstrap_servers: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", bootstrap_servers);
        for (name, p) in &self.properties {
            config.set(name, &p.value);
        }
        config
    }

    /// The properties as they may be shown: secrets redacted.
    pub fn redacted(&self) -> BTreeMap<String, String> {
        self.properties
            .iter()
            .map(|(name, p)| {
                let value = if is_secret(name) {
                    REDACTED.to_string()
                } else {
                    p.value.clone()
                };
                (name.clone(), value)
            })
            .collect()
    }
}

/// `name=value` lines of a Java properties file: `#` and `!` start a
/// comment line, blank lines are skipped, `:` may stand for `=`, spaces
/// around either are dropped. (Escapes and continuation lines are not
/// taken: librdkafka values need neither.)
fn parse_file(path: &Path, text: &str) -> Result<Vec<(String, Property)>, PropertyError> {
    let mut properties = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let origin = Origin::File {
            path: path.to_path_buf(),
            line: i + 1,
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some((name, value)) = line.split_once(['=', ':']) else {
            return Err(PropertyError::Syntax { origin });
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() {
            return Err(PropertyError::Syntax { origin });
        }
        properties.push((
            name.to_string(),
            Property {
                value: value.to_string(),
                origin,
            },
        ));
    }
    Ok(properties)
}

#[cfg(test)]
mod tests;

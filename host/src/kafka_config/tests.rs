use super::*;

fn vars(v: &[(&str, &str)]) -> ClientVars {
    ClientVars(
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn file(text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "event-host-kafka-{}-{}.properties",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn variables_name_properties_with_dots_as_underscores() {
    assert_eq!(
        property_of_var("KAFKA_CLIENT_SECURITY_PROTOCOL").as_deref(),
        Some("security.protocol")
    );
    assert_eq!(
        property_of_var("KAFKA_CLIENT_SASL_OAUTHBEARER_CLIENT_SECRET").as_deref(),
        Some("sasl.oauthbearer.client.secret")
    );
    assert_eq!(
        property_of_var("KAFKA_CLIENT_SSL__KEY").as_deref(),
        Some("ssl_key")
    );
    assert_eq!(property_of_var("KAFKA_CLIENT_"), None);
    assert_eq!(property_of_var("KAFKA_BROKERS"), None);
}

#[test]
fn the_file_is_read_and_the_environment_wins() {
    let path = file(
        "# from the cloud console\n\
         bootstrap.servers=pkc-1.example.com:9092\n\
         security.protocol=SASL_SSL\n\
         sasl.mechanisms = PLAIN\n\
         ! another comment\n\
         \n\
         client.id: from-file\n\
         sasl.username=KEY\n\
         sasl.password=p=ss:word\n",
    );
    let p = KafkaProperties::load(
        Some(&path),
        &vars(&[("KAFKA_CLIENT_CLIENT_ID", "from-env")]),
    )
    .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(p.bootstrap_servers(), Some("pkc-1.example.com:9092"));
    let shown = p.redacted();
    assert_eq!(shown["client.id"], "from-env");
    assert_eq!(shown["sasl.mechanisms"], "PLAIN");
    assert_eq!(shown["sasl.username"], "KEY");
    assert_eq!(shown["sasl.password"], REDACTED);
    let client = p.client("b:9092");
    assert_eq!(client.get("bootstrap.servers"), Some("b:9092"));
    // The value is kept whole: only the first `=` separates.
    assert_eq!(client.get("sasl.password"), Some("p=ss:word"));
    assert_eq!(client.get("security.protocol"), Some("SASL_SSL"));
}

#[test]
fn an_unknown_property_is_named_with_where_it_came_from() {
    let e = KafkaProperties::load(None, &vars(&[("KAFKA_CLIENT_NO_SUCH_THING", "1")]))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("KAFKA_CLIENT_NO_SUCH_THING: no.such.thing:"),
        "{e}"
    );
    assert!(e.contains("No such configuration property"), "{e}");

    let path = file("client.id=a\nthis line has no separator\n");
    let e = KafkaProperties::load(Some(&path), &ClientVars::default())
        .unwrap_err()
        .to_string();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(e, format!("{}:2: expected name=value", path.display()));
}

#[test]
fn a_bad_value_is_refused_by_librdkafka() {
    let e = KafkaProperties::load(
        None,
        &vars(&[("KAFKA_CLIENT_SECURITY_PROTOCOL", "carrier-pigeon")]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("KAFKA_CLIENT_SECURITY_PROTOCOL: security.protocol:"),
        "{e}"
    );
    assert!(e.contains("carrier-pigeon"), "{e}");
}

#[test]
fn a_secret_never_shows_in_an_error() {
    let vars = vars(&[("KAFKA_CLIENT_SSL_KEY_PASSWORD", "hunter2")]);
    assert!(KafkaProperties::load(None, &vars).is_ok());
    assert!(!format!("{vars:?}").contains("hunter2"), "{vars:?}");
    let path = file("ssl.keystore.password=hunter2\nsasl.password=hunter2\n");
    let p = KafkaProperties::load(Some(&path), &ClientVars::default()).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(!format!("{:?}", p.redacted()).contains("hunter2"));
    for name in [
        "sasl.password",
        "ssl.key.password",
        "ssl.keystore.password",
        "sasl.oauthbearer.client.secret",
        "ssl.key.pem",
        "sasl.oauthbearer.assertion.private.key.passphrase",
    ] {
        assert!(is_secret(name), "{name}");
    }
    for name in [
        "sasl.username",
        "security.protocol",
        "ssl.ca.location",
        "client.id",
    ] {
        assert!(!is_secret(name), "{name}");
    }
}

#[test]
fn what_the_host_sets_itself_is_refused() {
    for (var, says) in [
        ("KAFKA_CLIENT_ENABLE_AUTO_COMMIT", "at-least-once"),
        ("KAFKA_CLIENT_GROUP_ID", "consumer group"),
        ("KAFKA_CLIENT_LINGER_MS", "LINGER_MS"),
        ("KAFKA_CLIENT_BOOTSTRAP_SERVERS", "KAFKA_BROKERS"),
    ] {
        let e = KafkaProperties::load(None, &vars(&[(var, "1")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot be set") && e.contains(says),
            "{var}: {e}"
        );
    }
}

/// Every Kafka client of the host starts from [`KafkaProperties::client`]:
/// a client made from a blank configuration would miss the operator's
/// security settings. (Checked in the source, where a new client would
/// appear.)
#[test]
fn no_client_is_made_from_a_blank_configuration() {
    fn visit(dir: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                visit(&path, found);
            } else if path.extension().is_some_and(|x| x == "rs")
                && !path.starts_with(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/kafka_config"))
                && !path.ends_with("kafka_config.rs")
            {
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, line) in text.lines().enumerate() {
                    if line.contains("ClientConfig::new()")
                        || line.contains("ClientConfig::default()")
                    {
                        found.push(format!("{}:{}", path.display(), i + 1));
                    }
                }
            }
        }
    }
    let mut found = Vec::new();
    visit(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    assert!(
        found.is_empty(),
        "clients made without the operator's properties: {found:?}"
    );
}

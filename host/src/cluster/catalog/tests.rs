use super::*;

fn head(digest: &str, size: usize, paused: bool) -> Head {
    Head {
        digest: digest.into(),
        paused,
        size,
        chunks: chunk_count(size),
        by: "test".into(),
        at_ms: 0,
    }
}

/// The records a writer sends for `bytes` as `name`, through their keys and
/// values, as a reader decodes them.
fn put(name: &str, digest: &str, bytes: &[u8], paused: bool) -> Vec<Record> {
    let n = chunk_count(bytes.len());
    let mut records: Vec<Record> = if bytes.is_empty() {
        vec![Record::decode(chunk_key(digest, 0, 1).as_bytes(), Some(b"")).unwrap()]
    } else {
        chunks(bytes)
            .enumerate()
            .map(|(i, c)| Record::decode(chunk_key(digest, i, n).as_bytes(), Some(c)).unwrap())
            .collect()
    };
    let value = serde_json::to_vec(&head(digest, bytes.len(), paused)).unwrap();
    records.push(Record::decode(handler_key(name).as_bytes(), Some(&value)).unwrap());
    records
}

#[test]
fn a_large_component_is_put_back_together_from_its_chunks() {
    let bytes: Vec<u8> = (0..(2 * CHUNK + 17)).map(|i| (i % 251) as u8).collect();
    let mut catalog = Catalog::default();
    let mut changes = Vec::new();
    for record in put("big", "d1", &bytes, false) {
        changes.extend(catalog.apply(record).unwrap());
    }
    assert_eq!(changes.len(), 1);
    let Change::Set { name, entry } = &changes[0] else {
        panic!("{changes:?}")
    };
    assert_eq!(name, "big");
    assert_eq!(entry.component.as_slice(), bytes.as_slice());
    assert_eq!(entry.head.chunks, 3);
}

#[test]
fn heads_replace_pause_and_delete() {
    let mut catalog = Catalog::default();
    for r in put("h", "v1", b"one", false) {
        catalog.apply(r).unwrap();
    }
    for r in put("h", "v2", b"two!", false) {
        catalog.apply(r).unwrap();
    }
    assert_eq!(catalog.head("h").unwrap().digest, "v2");
    assert!(!catalog.in_use("v1"));
    // A pause names the same digest: its component is still there.
    let paused = serde_json::to_vec(&head("v2", 4, true)).unwrap();
    let change = catalog
        .apply(Record::decode(b"handler/h", Some(&paused)).unwrap())
        .unwrap();
    assert!(matches!(change, Some(Change::Set { entry, .. }) if entry.head.paused));
    let change = catalog
        .apply(Record::decode(b"handler/h", None).unwrap())
        .unwrap();
    assert!(matches!(change, Some(Change::Removed { name }) if name == "h"));
    assert!(catalog.heads().is_empty());
    // Deleting what is not there changes nothing.
    assert!(
        catalog
            .apply(Record::decode(b"handler/h", None).unwrap())
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_head_without_its_component_is_refused() {
    let mut catalog = Catalog::default();
    let value = serde_json::to_vec(&head("gone", 3, false)).unwrap();
    let e = catalog
        .apply(Record::decode(b"handler/h", Some(&value)).unwrap())
        .unwrap_err();
    assert!(e.contains("not in the catalog"), "{e}");
    // A component whose chunks were tombstoned is gone too.
    for r in put("a", "d", b"abc", false) {
        catalog.apply(r).unwrap();
    }
    catalog
        .apply(Record::decode(chunk_key("d", 0, 1).as_bytes(), None).unwrap())
        .unwrap();
    assert!(!catalog.has_component("d"));
}

#[test]
fn keys_that_are_not_the_catalogs_are_refused() {
    for key in [
        "blob/d/1",
        "blob/d/2/2",
        "blob/d/x/2",
        "other",
        "blob/d/0/1/9",
    ] {
        assert!(Record::decode(key.as_bytes(), Some(b"x")).is_err(), "{key}");
    }
    assert_eq!(Record::decode(b"catalog", Some(b"{}")), Ok(Record::Mark));
    assert!(Record::decode(b"handler/h", Some(b"not json")).is_err());
}

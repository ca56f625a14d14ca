use super::*;

fn record(raw: &str) -> SessionRecord {
    let labels = BTreeMap::from([("team".to_owned(), "sales".to_owned())]);
    let created_at = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_000);
    SessionRecord::new(&id(raw), labels, created_at)
}

fn id(raw: &str) -> SessionId {
    SessionId::parse(raw).unwrap()
}

#[tokio::test]
async fn records_survive_a_reopen_in_id_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, restored) = SessionDb::open(tmp.path()).unwrap();
    assert!(restored.records.is_empty());
    db.create(record("bob")).await.unwrap();
    let mut alice = record("alice");
    db.create(alice.clone()).await.unwrap();
    alice.jid = "15551234567:3@s.whatsapp.net".into();
    alice.stopped = true;
    alice.connected_at_ms = Some(1_700_000_000_500);
    db.save(alice.clone()).await.unwrap();
    drop(db);

    let (db, restored) = SessionDb::open(tmp.path()).unwrap();
    assert_eq!(restored.records, vec![alice.clone(), record("bob")]);
    assert_eq!(db.load(&id("alice")).await.unwrap(), Some(alice));
    assert_eq!(db.load(&id("nobody")).await.unwrap(), None);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tmp.path().join(DB_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn a_deleted_id_stays_deleted_until_created_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, _) = SessionDb::open(tmp.path()).unwrap();
    db.create(record("alice")).await.unwrap();
    db.delete(&id("alice")).await.unwrap();
    // A late save (a backend event racing the delete) must not bring it back.
    db.save(record("alice")).await.unwrap();
    assert_eq!(db.load(&id("alice")).await.unwrap(), None);
    drop(db);

    let (db, restored) = SessionDb::open(tmp.path()).unwrap();
    assert!(restored.records.is_empty());
    assert_eq!(
        restored.unwiped,
        vec![id("alice")],
        "a delete cut short is finished at startup"
    );
    db.wiped(&id("alice")).await.unwrap();
    db.create(record("alice")).await.unwrap();
    assert!(db.load(&id("alice")).await.unwrap().is_some());
    drop(db);

    let (_, restored) = SessionDb::open(tmp.path()).unwrap();
    assert_eq!(restored.records.len(), 1);
    assert!(restored.unwiped.is_empty());
}

#[tokio::test]
async fn a_corrupt_record_is_reported_by_id_and_the_others_load() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, _) = SessionDb::open(tmp.path()).unwrap();
    for name in ["a", "b", "c"] {
        db.create(record(name)).await.unwrap();
    }
    drop(db);
    let conn = Connection::open(tmp.path().join(DB_FILE)).unwrap();
    conn.execute("UPDATE sessions SET labels = '{broken' WHERE id = 'b'", [])
        .unwrap();
    conn.execute(
        "INSERT INTO sessions (id, created_at_ms, updated_at_ms) VALUES ('../etc', 0, 0)",
        [],
    )
    .unwrap();
    drop(conn);

    let (_, restored) = SessionDb::open(tmp.path()).unwrap();
    let ids: Vec<_> = restored.records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["a", "c"]);
    let skipped: Vec<_> = restored.skipped.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(skipped, ["../etc", "b"]);
    assert!(restored.skipped[1].why.contains("labels"), "{:?}", restored.skipped);
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_an_error_not_a_fresh_start() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(DB_FILE), vec![0x42; 8192]).unwrap();
    let error = SessionDb::open(tmp.path()).unwrap_err();
    assert!(error.to_string().contains("not a database"), "{error}");
    assert_eq!(std::fs::read(tmp.path().join(DB_FILE)).unwrap(), vec![0x42; 8192]);
}

#[tokio::test]
async fn concurrent_writes_are_all_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, _) = SessionDb::open(tmp.path()).unwrap();
    let writes = (0..300).map(|n| {
        let db = db.clone();
        tokio::spawn(async move { db.create(record(&format!("s{n:03}"))).await })
    });
    for write in writes {
        write.await.unwrap().unwrap();
    }
    drop(db);
    let (_, restored) = SessionDb::open(tmp.path()).unwrap();
    assert_eq!(restored.records.len(), 300);
}

#[tokio::test(start_paused = true)]
async fn an_inline_list_keeps_the_same_file_and_takes_no_virtual_time() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, _) = SessionDb::open_inline(tmp.path()).unwrap();
    // A timer pending: were the runtime to go idle during a write, the paused
    // clock would jump to it.
    let alarm = tokio::spawn(tokio::time::sleep(std::time::Duration::from_secs(3600)));
    tokio::task::yield_now().await;
    let before = tokio::time::Instant::now();
    db.create(record("alice")).await.unwrap();
    db.delete(&id("alice")).await.unwrap();
    db.create(record("bob")).await.unwrap();
    assert_eq!(db.load(&id("bob")).await.unwrap(), Some(record("bob")));
    assert_eq!(
        tokio::time::Instant::now(),
        before,
        "a write in place lets no time pass"
    );
    assert!(!alarm.is_finished());
    drop(db);

    let (_, restored) = SessionDb::open(tmp.path()).unwrap();
    assert_eq!(restored.records, vec![record("bob")]);
    assert_eq!(restored.unwiped, vec![id("alice")]);
}

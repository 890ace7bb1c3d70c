//! `mlgate store migrate`: a single node's SQLite store moved into PostgreSQL (or, without a
//! test cluster, into another SQLite file), then served from there with the same master key:
//! every secret made before the move still signs in.

use crate::support::*;

#[tokio::test]
async fn a_moved_store_accepts_the_old_secrets() {
    // The source is always the data directory's SQLite file, whatever this run's backend.
    let dir = TempDir::new();
    let sqlite = dir.0.join("data").join("mlgate.db");
    let source = sqlite.to_string_lossy().into_owned();
    let s = TestServer::start_with(dir, |c| c.store = Some(source.clone())).await;
    let sp = s.create_sp("moved-app").await;
    let before =
        s.client().client_credentials(&s.tenant_id, &sp.app_id, &sp.password, ARM_SCOPE).await;
    assert!(before.is_ok());
    let dir = s.stop().await;

    let target = match mlgate_store::testing::postgres_url() {
        Some(base) => mlgate_store::testing::fresh_postgres_database(&base).await.unwrap(),
        None => format!("sqlite://{}", dir.0.join("moved.db").display()),
    };
    let mlgate = env!("CARGO_BIN_EXE_mlgate");
    let run = |args: Vec<String>| {
        std::process::Command::new(mlgate).args(&args).env_remove("MLGATE_STORE").output().unwrap()
    };
    let out = run(vec![
        "store".into(),
        "migrate".into(),
        "--from".into(),
        format!("sqlite://{source}"),
        "--to".into(),
        target.clone(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tables: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = |t: &str| {
        tables.as_array().unwrap().iter().find(|r| r["table"] == t).unwrap()["rows"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(rows("tenants"), 1);
    assert!(rows("service_principals") >= 2 && rows("client_secrets") >= 1);
    assert!(rows("signing_keys") >= 2 && rows("users") >= 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("every table's count matches"), "{stderr}");

    // A second copy into the now full target is refused, and leaves it as it was.
    let again = run(vec![
        "store".into(),
        "migrate".into(),
        "--from".into(),
        source.clone(),
        "--to".into(),
        target.clone(),
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    // A source that does not exist is not created.
    let missing = dir.0.join("nothing-here.db");
    let none = run(vec![
        "store".into(),
        "migrate".into(),
        "--from".into(),
        missing.to_string_lossy().into_owned(),
        "--to".into(),
        target.clone(),
    ]);
    assert!(!none.status.success());
    assert!(!missing.exists());

    // The node now runs on the copy, with the master key it had.
    let moved = target.clone();
    let s = TestServer::start_with(dir, |c| c.store = Some(moved)).await;
    let token = s
        .client()
        .client_credentials(&s.tenant_id, &sp.app_id, &sp.password, ARM_SCOPE)
        .await
        .expect("the old client secret signs in");
    assert!(!token.access_token.is_empty());
    let admin = s.admin_token().await; // the bootstrap administrator's password
    let me = s.me_with(Some(&format!("Bearer {admin}"))).await;
    assert_eq!(me.status(), 200);
    assert_eq!(
        s.store.backend() == mlgate_store::Backend::Postgres,
        target.starts_with("postgres")
    );
}

#[tokio::test]
async fn a_store_that_cannot_be_opened_is_named_without_its_password() {
    let dir = TempDir::new();
    for (store, expect) in [
        // Nothing listens on port 1: the connection is refused at once.
        (
            "postgres://mlgate:s3cret-pw@127.0.0.1:1/mlgate",
            "postgres://mlgate:***@127.0.0.1:1/mlgate",
        ),
        ("mysql://mlgate:s3cret-pw@127.0.0.1/mlgate", "unsupported store"),
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mlgate"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.0.join("data"))
            .args(["--store", store])
            .env("MLGATE_LOG", "info")
            .env_remove("MLGATE_STORE")
            .output()
            .await
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{text}");
        assert!(text.contains(expect), "{text}");
        assert!(!text.contains("s3cret-pw"), "the password is in the output: {text}");
    }
}

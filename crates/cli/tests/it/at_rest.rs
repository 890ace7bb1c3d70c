//! Nothing secret at rest: after creating users and principals, signing in and starting device
//! logins, the raw database files hold no client secret, password, refresh token, device user
//! code, private key or master key.

use base64::Engine;
use mlgate_core::store::{DirectoryStore, KeyStore};
use mlgate_proto::{CreateUser, ResetCredential};

use crate::support::*;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn the_database_files_hold_no_secret_in_clear() {
    // The scan reads the database's files: SQLite whatever the run's backend (the same code
    // writes the same digests and sealed values to PostgreSQL).
    let s = TestServer::start_with(TempDir::new(), sqlite_in_data_dir).await;
    let admin = s.admin_token().await;
    let c = s.client();
    let mut secrets: Vec<(String, Vec<u8>)> =
        vec![("admin password".into(), ADMIN_PASSWORD.into())];

    for i in 0..3 {
        let pw = format!("User-{i}-Passw0rd-{}", uuid::Uuid::new_v4());
        c.create_user(
            &admin,
            &CreateUser {
                user_principal_name: format!("user{i}@mlgate.local"),
                display_name: format!("User {i}"),
                password: pw.clone(),
                force_change_password_next_sign_in: false,
            },
        )
        .await
        .unwrap();
        let t = c
            .password(&s.tenant_id, &format!("user{i}@mlgate.local"), &pw, ARM_SCOPE)
            .await
            .unwrap();
        secrets.push((format!("user{i} password"), pw.into_bytes()));
        secrets.push((format!("user{i} refresh token"), t.refresh_token.unwrap().into_bytes()));
    }
    for i in 0..3 {
        let sp = s.create_sp(&format!("at-rest-{i}")).await;
        let more = c
            .reset_credential(
                &admin,
                &sp.app_id,
                &ResetCredential { append: true, ..Default::default() },
            )
            .await
            .unwrap();
        // The secrets really are in use, not just minted.
        c.client_credentials(&s.tenant_id, &sp.app_id, &sp.password, ARM_SCOPE).await.unwrap();
        secrets.push((format!("sp{i} secret"), sp.password.into_bytes()));
        secrets.push((format!("sp{i} second secret"), more.password.into_bytes()));
    }

    // Device user codes, pending and approved, as shown and as normalised.
    for _ in 0..3 {
        let resp = s
            .http()
            .post(format!("{}/organizations/oauth2/v2.0/devicecode", s.url))
            .form(&[("client_id", mlgate_proto::CLI_CLIENT_ID), ("scope", ARM_SCOPE)])
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = resp.json().await.unwrap();
        let shown = body["user_code"].as_str().unwrap().to_string();
        assert_eq!(shown.len(), 9, "{shown}");
        secrets.push((format!("user code {shown}"), shown.clone().into_bytes()));
        secrets
            .push((format!("user code {shown} (normalised)"), shown.replace('-', "").into_bytes()));
    }
    let shown = std::str::from_utf8(&secrets.last().unwrap().1).unwrap().to_string();
    let user = s.store.user_by_upn_anywhere(ADMIN).await.unwrap().unwrap();
    s.server_state
        .authority
        .decide_device(&shown, &user, true, "127.0.0.1".parse().unwrap())
        .await
        .unwrap();

    // Private keys, in DER and in the base64 forms they might be written in.
    let master_text = std::fs::read_to_string(s.data_dir().join("master.key")).unwrap();
    secrets.push(("master key (text)".into(), master_text.trim().as_bytes().to_vec()));
    let master_raw =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(master_text.trim()).unwrap();
    secrets.push(("master key (raw)".into(), master_raw));
    let master = mlgate_server::load_master_key(&s.data_dir(), None, true).unwrap();
    let keys = s.store.signing_keys().await.unwrap();
    assert!(keys.len() >= 2);
    for k in &keys {
        let der = master.open(k.kid.0.as_bytes(), &k.sealed_private_key).unwrap();
        // The 32-byte private scalar sits inside the PKCS#8 document; look for a 24-byte run
        // from its middle as well as for the whole document.
        secrets.push((format!("private key {} (pkcs8)", k.kid), der.clone()));
        secrets.push((format!("private key {} (excerpt)", k.kid), der[40..64].to_vec()));
        secrets.push((
            format!("private key {} (b64)", k.kid),
            base64::engine::general_purpose::STANDARD.encode(&der).into_bytes(),
        ));
    }

    let dir = s.data_dir();
    let mut raw = Vec::new();
    for name in ["mlgate.db", "mlgate.db-wal", "mlgate.db-shm"] {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            raw.extend_from_slice(&bytes);
        }
    }
    assert!(raw.len() > 10_000, "the scan must read the real database ({} bytes)", raw.len());
    // A control: the scan does see things that are stored in clear.
    assert!(contains(&raw, b"user1@mlgate.local"), "the scan cannot see clear text at all");
    for (label, secret) in &secrets {
        assert!(!contains(&raw, secret), "{label} is stored in clear");
    }
}

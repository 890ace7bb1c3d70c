//! Nothing secret at rest: after creating users and principals and signing in, the raw database
//! files hold no client secret, password, refresh token, private key or master key.

use base64::Engine;
use mlgate_core::store::KeyStore;
use mlgate_proto::{CreateUser, ResetCredential};

use crate::support::*;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn the_database_files_hold_no_secret_in_clear() {
    let s = TestServer::start().await;
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

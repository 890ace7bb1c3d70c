//! The model registry: register files and folders, versions, download, delete, RBAC, bad input.

use mlgate_client::models::WorkspaceAddress;
use mlgate_proto::{CreateRoleAssignment, ModelFile, RegisterModel};

use crate::support::*;

async fn workspace(s: &TestServer) -> (String, WorkspaceAddress, String) {
    let admin = s.admin_token().await;
    let c = s.client();
    let sub = c.subscriptions(&admin).await.unwrap()[0].subscription_id.clone();
    c.put_resource_group(&admin, &sub, "ml", None).await.unwrap();
    let ws = c.put_workspace(&admin, &sub, "ml", "models-ws", None).await.unwrap();
    (
        admin,
        WorkspaceAddress {
            subscription_id: sub,
            resource_group: "ml".into(),
            workspace: "models-ws".into(),
        },
        ws.id,
    )
}

#[tokio::test]
async fn register_version_download_and_delete_models() {
    let s = TestServer::start().await;
    let (admin, ws, _) = workspace(&s).await;
    let c = s.client();
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.0.join("folder/sub")).unwrap();
    std::fs::write(dir.0.join("model.onnx"), b"not really onnx, but bytes").unwrap();
    std::fs::write(dir.0.join("folder/weights.bin"), vec![7u8; 300_000]).unwrap();
    std::fs::write(dir.0.join("folder/sub/labels.txt"), b"cat\ndog\n").unwrap();

    let tags = [("framework".to_string(), "onnx".to_string())].into_iter().collect();
    let v1 = c
        .register_model_from_path(
            &admin,
            &ws,
            "classifier",
            &dir.0.join("model.onnx"),
            "first",
            tags,
        )
        .await
        .unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(v1.files[0].path, "model.onnx");
    assert_eq!(v1.tags["framework"], "onnx");
    let v2 = c
        .register_model_from_path(
            &admin,
            &ws,
            "classifier",
            &dir.0.join("folder"),
            "",
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(v2.version, 2, "versions count up");
    let paths: Vec<&str> = v2.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["sub/labels.txt", "weights.bin"]);

    let listed = c.models(&admin, &ws).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].version, 2, "the list shows the latest version");
    assert_eq!(
        c.model_versions(&admin, &ws, "CLASSIFIER").await.unwrap().len(),
        2,
        "names match case-insensitively"
    );
    assert_eq!(c.model(&admin, &ws, "classifier", Some(1)).await.unwrap().description, "first");

    let out = TempDir::new();
    c.download_model(&admin, &ws, "classifier", None, &out.0).await.unwrap();
    assert_eq!(std::fs::read(out.0.join("weights.bin")).unwrap(), vec![7u8; 300_000]);
    assert_eq!(std::fs::read(out.0.join("sub/labels.txt")).unwrap(), b"cat\ndog\n");

    c.delete_model(&admin, &ws, "classifier", 1).await.unwrap();
    let err = c.model(&admin, &ws, "classifier", Some(1)).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));
    assert_eq!(c.model(&admin, &ws, "classifier", None).await.unwrap().version, 2);
    let err = c.model(&admin, &ws, "nothing-here", None).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));
}

#[tokio::test]
async fn model_actions_follow_rbac_and_bad_input_is_refused() {
    let s = TestServer::start().await;
    let (admin, ws, ws_id) = workspace(&s).await;
    let c = s.client();
    let sha = c.upload_blob(&admin, &ws, b"weights".to_vec()).await.unwrap();
    let file = |path: &str| ModelFile { path: path.into(), sha256: sha.clone(), size: 7 };
    c.register_model(
        &admin,
        &ws,
        "m",
        &RegisterModel { files: vec![file("m.bin")], ..Default::default() },
    )
    .await
    .unwrap();

    // A Reader reads and downloads but cannot register or delete; a Data Scientist registers.
    let token_with = |role: &'static str| {
        let s = &s;
        let admin = admin.clone();
        let ws_id = ws_id.clone();
        async move {
            let sp = s.create_sp(role).await;
            s.client()
                .create_role_assignment(
                    &admin,
                    &CreateRoleAssignment {
                        assignee: sp.app_id.clone(),
                        role: role.into(),
                        scope: ws_id,
                    },
                )
                .await
                .unwrap();
            s.client()
                .client_credentials(&s.tenant_id, &sp.app_id, &sp.password, ARM_SCOPE)
                .await
                .unwrap()
                .access_token
        }
    };
    let reader = token_with("Reader").await;
    assert!(c.model(&reader, &ws, "m", None).await.is_ok());
    let out = TempDir::new();
    assert!(c.download_model(&reader, &ws, "m", None, &out.0).await.is_ok());
    let refused = c
        .register_model(
            &reader,
            &ws,
            "m",
            &RegisterModel { files: vec![file("m.bin")], ..Default::default() },
        )
        .await;
    assert_eq!(refused.unwrap_err().status().map(|s| s.as_u16()), Some(403));
    assert_eq!(
        c.upload_blob(&reader, &ws, b"x".to_vec()).await.unwrap_err().status().map(|s| s.as_u16()),
        Some(403)
    );
    assert_eq!(
        c.delete_model(&reader, &ws, "m", 1).await.unwrap_err().status().map(|s| s.as_u16()),
        Some(403)
    );
    let scientist = token_with("AzureML Data Scientist").await;
    let v = c
        .register_model(
            &scientist,
            &ws,
            "m",
            &RegisterModel { files: vec![file("m.bin")], ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(v.version, 2);
    let stranger = s.create_sp("stranger").await;
    let st = c
        .client_credentials(&s.tenant_id, &stranger.app_id, &stranger.password, ARM_SCOPE)
        .await
        .unwrap()
        .access_token;
    assert_eq!(c.models(&st, &ws).await.unwrap_err().status().map(|s| s.as_u16()), Some(403));

    // Bad manifests: traversal, absolute, duplicate, unknown content, empty, bad name.
    let bad = |files: Vec<ModelFile>| RegisterModel { files, ..Default::default() };
    for (name, req) in [
        ("m", bad(vec![file("../escape")])),
        ("m", bad(vec![file("/etc/passwd")])),
        ("m", bad(vec![file("a"), file("a")])),
        ("m", bad(vec![ModelFile { path: "x".into(), sha256: "0".repeat(64), size: 1 }])),
        ("m", bad(vec![ModelFile { path: "x".into(), sha256: "not-hex".into(), size: 1 }])),
        ("m", bad(vec![])),
        ("bad/name", bad(vec![file("a")])),
    ] {
        let err = c.register_model(&admin, &ws, name, &req).await.unwrap_err();
        assert!(
            matches!(err.status().map(|s| s.as_u16()), Some(400) | Some(404)),
            "{name} {req:?}: {err:?}"
        );
    }
    // A body that does not hash to the digest in the URL.
    let url = format!(
        "{}/subscriptions/{}/resourceGroups/ml/providers/Microsoft.MachineLearningServices/workspaces/models-ws/blobs/{}",
        s.url,
        ws.subscription_id,
        "a".repeat(64)
    );
    let r = s.http().put(&url).bearer_auth(&admin).body("something else").send().await.unwrap();
    assert_eq!(r.status(), 400);
    // A model in a workspace that does not exist.
    let ghost = WorkspaceAddress { workspace: "ghost-ws".into(), ..ws.clone() };
    assert_eq!(c.models(&admin, &ghost).await.unwrap_err().status().map(|s| s.as_u16()), Some(404));
}

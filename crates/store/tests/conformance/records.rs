//! Models, web services and their keys, online endpoints, code versions and uploads.

use std::collections::BTreeMap;
use std::sync::Arc;

use mlgate_core::ids::{ObjectId, WorkspaceId};
use mlgate_core::records::{
    CodeVersion, ModelFile, ModelVersion, OnlineEndpoint, ServiceState, UploadedBlob,
};
use mlgate_core::services::AuthMode;
use mlgate_core::store::{Store, StoreError};

use crate::conformance;
use crate::support::*;

conformance!(model_versions, services_and_keys, online_endpoints, code_versions_and_uploads);

pub fn model(ws: WorkspaceId, name: &str, by: ObjectId) -> ModelVersion {
    ModelVersion {
        workspace_id: ws,
        name: name.into(),
        version: 0,
        description: "a model".into(),
        tags: BTreeMap::from([("k".to_string(), "v".to_string())]),
        files: vec![ModelFile { path: "model.onnx".into(), sha256: "ab".repeat(32), size: 12 }],
        created_at: t(0),
        created_by: by,
    }
}

pub fn endpoint(name: &str, ws: WorkspaceId, by: ObjectId) -> OnlineEndpoint {
    OnlineEndpoint {
        name: name.into(),
        workspace_id: ws,
        auth_mode: AuthMode::Key,
        description: "an endpoint".into(),
        tags: BTreeMap::new(),
        deployment: None,
        deployment_spec: None,
        created_at: t(0),
        updated_at: t(0),
        created_by: by,
    }
}

async fn model_versions(s: Arc<dyn Store>) {
    let seed = seed(s.as_ref()).await;
    let (ws, by) = (seed.ws.id, seed.admin.object_id);
    assert_eq!(s.insert_model_version(&model(ws, "Digits", by)).await.unwrap(), 1);
    assert_eq!(s.insert_model_version(&model(ws, "digits", by)).await.unwrap(), 2, "same model");
    assert_eq!(s.insert_model_version(&model(ws, "iris", by)).await.unwrap(), 1);
    let versions = s.model_versions(ws, "DIGITS").await.unwrap();
    assert_eq!(versions.iter().map(|m| m.version).collect::<Vec<_>>(), [1, 2]);
    let mut expected = model(ws, "Digits", by);
    expected.version = 1;
    assert_eq!(versions[0], expected);
    assert_eq!(s.model_version(ws, "digits", 2).await.unwrap().unwrap().name, "digits");
    assert_eq!(s.model_version(ws, "digits", 3).await.unwrap(), None);
    let latest: Vec<_> =
        s.latest_models(ws).await.unwrap().into_iter().map(|m| (m.name, m.version)).collect();
    assert_eq!(latest, [("digits".to_string(), 2), ("iris".to_string(), 1)]);
    s.delete_model_version(ws, "Digits", 1).await.unwrap();
    assert!(matches!(s.delete_model_version(ws, "digits", 1).await, Err(StoreError::NotFound)));
    assert_eq!(s.insert_model_version(&model(ws, "digits", by)).await.unwrap(), 3);
    assert!(s.model_versions(WorkspaceId(guid()), "digits").await.unwrap().is_empty());
}

async fn services_and_keys(s: Arc<dyn Store>) {
    let seed = seed(s.as_ref()).await;
    let (ws, by) = (seed.ws.id, seed.admin.object_id);
    let svc = service("Scorer", ws, by);
    s.put_service(&svc, &sealed("first")).await.unwrap();
    assert_eq!(s.service("scorer").await.unwrap(), Some(svc.clone()));
    assert_eq!(s.service_keys("SCORER").await.unwrap(), Some(sealed("first")));

    // An update keeps the keys it has.
    let mut update = svc.clone();
    update.model_version = 2;
    update.state = ServiceState::Healthy;
    s.put_service(&update, &sealed("second")).await.unwrap();
    assert_eq!(s.service("Scorer").await.unwrap().unwrap().model_version, 2);
    assert_eq!(s.service_keys("scorer").await.unwrap(), Some(sealed("first")));

    // Another workspace may not take the name, and a refused deployment stores no keys.
    let other = workspace(seed.sub.id, "RG", "other", by);
    let (other, _) = s.put_workspace(&other).await.unwrap();
    assert!(matches!(
        s.put_service(&service("SCORER", other.id, by), &sealed("x")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.service("scorer").await.unwrap().unwrap().workspace_id, ws);
    s.put_endpoint(&endpoint("taken", other.id, by)).await.unwrap();
    assert!(matches!(
        s.put_service(&service("Taken", ws, by), &sealed("y")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.service_keys("taken").await.unwrap(), None, "no keys without the service");

    s.put_service(&service("b-second", ws, by), &sealed("b")).await.unwrap();
    let names: Vec<_> = s.services(ws).await.unwrap().into_iter().map(|x| x.name).collect();
    assert_eq!(names, ["b-second", "Scorer"]);
    assert_eq!(s.all_services().await.unwrap().len(), 2);

    s.set_service_state("scorer", ServiceState::Failed, Some("init() failed"), t(50))
        .await
        .unwrap();
    let failed = s.service("scorer").await.unwrap().unwrap();
    assert_eq!(
        (failed.state, failed.error.as_deref(), failed.updated_at),
        (ServiceState::Failed, Some("init() failed"), t(50))
    );

    s.put_service_keys("scorer", &sealed("regenerated")).await.unwrap();
    assert_eq!(s.service_keys("scorer").await.unwrap(), Some(sealed("regenerated")));
    assert!(!s.insert_service_keys("scorer", &sealed("ignored")).await.unwrap());
    assert!(s.insert_service_keys("fresh", &sealed("fresh")).await.unwrap());
    assert_eq!(s.service_keys("fresh").await.unwrap(), Some(sealed("fresh")));

    s.delete_service("SCORER").await.unwrap();
    assert_eq!(s.service("scorer").await.unwrap(), None);
    assert_eq!(s.service_keys("scorer").await.unwrap(), None, "its keys go too");
    assert!(matches!(s.delete_service("scorer").await, Err(StoreError::NotFound)));
}

async fn online_endpoints(s: Arc<dyn Store>) {
    let seed = seed(s.as_ref()).await;
    let (ws, by) = (seed.ws.id, seed.admin.object_id);
    let mut e = endpoint("Blue", ws, by);
    e.tags.insert("team".into(), "ml".into());
    s.put_endpoint(&e).await.unwrap();
    assert_eq!(s.endpoint("blue").await.unwrap(), Some(e.clone()));
    let mut update = e.clone();
    update.auth_mode = AuthMode::Token;
    update.deployment = Some("default".into());
    update.deployment_spec = Some(serde_json::json!({"instanceType": "Standard_DS2_v2"}));
    update.updated_at = t(9);
    s.put_endpoint(&update).await.unwrap();
    assert_eq!(s.endpoint("BLUE").await.unwrap(), Some(update.clone()));
    assert_eq!(s.endpoints(ws).await.unwrap(), vec![update.clone()]);

    let other = workspace(seed.sub.id, "RG", "other", by);
    let (other, _) = s.put_workspace(&other).await.unwrap();
    assert!(matches!(
        s.put_endpoint(&endpoint("blue", other.id, by)).await,
        Err(StoreError::Conflict(_))
    ));
    s.put_service(&service("green", other.id, by), &sealed("g")).await.unwrap();
    assert!(matches!(
        s.put_endpoint(&endpoint("GREEN", ws, by)).await,
        Err(StoreError::Conflict(_))
    ));

    // The endpoint's deployment is the service of its name: deleting the service keeps the
    // endpoint's keys, deleting the endpoint takes all.
    s.put_service(&service("blue", ws, by), &sealed("blue")).await.unwrap();
    s.delete_service("blue").await.unwrap();
    assert_eq!(s.service_keys("blue").await.unwrap(), Some(sealed("blue")));
    s.put_service(&service("blue", ws, by), &sealed("ignored")).await.unwrap();
    s.delete_endpoint("Blue").await.unwrap();
    assert_eq!(s.endpoint("blue").await.unwrap(), None);
    assert_eq!(s.service("blue").await.unwrap(), None);
    assert_eq!(s.service_keys("blue").await.unwrap(), None);
    assert!(matches!(s.delete_endpoint("blue").await, Err(StoreError::NotFound)));

    s.put_endpoint(&endpoint("green-ep", ws, by)).await.unwrap();
    s.delete_endpoint_record("green-ep").await.unwrap();
    s.delete_endpoint_record("green-ep").await.unwrap();
    assert_eq!(s.endpoint("green-ep").await.unwrap(), None);
}

async fn code_versions_and_uploads(s: Arc<dyn Store>) {
    let seed = seed(s.as_ref()).await;
    let (ws, by) = (seed.ws.id, seed.admin.object_id);
    let v1 = CodeVersion {
        workspace_id: ws,
        name: "Src".into(),
        version: "1".into(),
        hash: Some("h1".into()),
        code_uri: "https://x/blobstore/a".into(),
        files: vec![ModelFile { path: "score.py".into(), sha256: "cd".repeat(32), size: 3 }],
        is_anonymous: true,
        description: String::new(),
        tags: BTreeMap::new(),
        created_at: t(0),
        created_by: by,
    };
    s.insert_code_version(&v1).await.unwrap();
    assert!(matches!(s.insert_code_version(&v1).await, Err(StoreError::Conflict(_))));
    let v2 = CodeVersion {
        version: "2".into(),
        hash: None,
        is_anonymous: false,
        created_at: t(5),
        ..v1.clone()
    };
    s.insert_code_version(&v2).await.unwrap();
    assert_eq!(s.code_version(ws, "src", "1").await.unwrap(), Some(v1.clone()));
    assert_eq!(s.code_versions(ws, "SRC").await.unwrap(), vec![v1.clone(), v2.clone()]);

    let area = "a".repeat(32);
    let blob = |path: &str, size: u64| UploadedBlob {
        upload: area.clone(),
        workspace_id: ws,
        path: path.into(),
        sha256: "ef".repeat(32),
        size,
        metadata: BTreeMap::new(),
        created_at: t(0),
    };
    s.put_uploaded_blob(&blob("dir/one.py", 4), 3, 10).await.unwrap();
    s.put_uploaded_blob(&blob("dir%_x.py", 4), 3, 10).await.unwrap();
    assert!(s.put_uploaded_blob(&blob("three", 3), 3, 10).await.is_err(), "bytes");
    s.put_uploaded_blob(&blob("dir/one.py", 5), 3, 10).await.unwrap(); // replaces
    s.put_uploaded_blob(&blob("z", 1), 3, 10).await.unwrap();
    assert!(s.put_uploaded_blob(&blob("more", 0), 3, 10).await.is_err(), "files");
    let listed: Vec<_> = s
        .uploaded_blobs(&area, "dir", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.path, b.size))
        .collect();
    assert_eq!(listed, [("dir%_x.py".to_string(), 4), ("dir/one.py".to_string(), 5)]);
    // A path's LIKE wildcards are plain characters.
    assert_eq!(s.uploaded_blobs(&area, "dir%", 10).await.unwrap().len(), 1);
    assert_eq!(s.uploaded_blobs(&area, "", 2).await.unwrap().len(), 2);
    let meta = BTreeMap::from([("hash_sha256".to_string(), "h1".to_string())]);
    s.set_uploaded_blob_metadata(&area, "z", &meta).await.unwrap();
    assert_eq!(s.uploaded_blob(&area, "z").await.unwrap().unwrap().metadata, meta);
    assert!(matches!(
        s.set_uploaded_blob_metadata(&area, "nope", &meta).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.forget_uploads_before(t(1)).await.unwrap(), 3);
    assert_eq!(s.uploaded_blob(&area, "z").await.unwrap(), None);
}

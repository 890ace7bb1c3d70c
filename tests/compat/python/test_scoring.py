"""The seed's web-service authentication with real clients: the scoring call is the seed's
`requests.post(scoring_uri, input_data, headers=headers)`, the management calls carry tokens
from msal and azure-identity. compat.sh deploys `compat-key` (a cluster: key auth by default)
and `compat-token` (token auth) in the shared workspace; the owner principal manages them and
the Reader principal only reads."""

import json
import os

import msal
import pytest
import requests
from azure.identity import ClientSecretCredential

INPUT = json.dumps({"data": [[1.0, 2.0], [0.0, 1.0]]})
EXPECTED = [5.5, 2.5]


@pytest.fixture(scope="module")
def ws():
    keys = ("MLGATE_SUBSCRIPTION_ID", "MLGATE_RESOURCE_GROUP", "MLGATE_WORKSPACE",
            "MLGATE_READER_CLIENT_ID", "MLGATE_READER_CLIENT_SECRET")
    missing = [k for k in keys if not os.environ.get(k)]
    if missing:
        pytest.fail("compat.sh did not export " + ", ".join(missing))
    return {k: os.environ[k] for k in keys}


def service_url(cfg, ws, name, action=""):
    return (f"{cfg.url}/subscriptions/{ws['MLGATE_SUBSCRIPTION_ID']}/resourceGroups/"
            f"{ws['MLGATE_RESOURCE_GROUP']}/providers/Microsoft.MachineLearningServices/workspaces/"
            f"{ws['MLGATE_WORKSPACE']}/services/{name}{action}")


def owner_token(cfg):
    app = msal.ConfidentialClientApplication(cfg.client_id, client_credential=cfg.client_secret,
                                             authority=f"{cfg.url}/{cfg.tenant_id}",
                                             instance_discovery=False)
    result = app.acquire_token_for_client(scopes=[cfg.scope])
    assert "access_token" in result, result
    return result["access_token"]


def reader_token(cfg, ws):
    cred = ClientSecretCredential(cfg.tenant_id, ws["MLGATE_READER_CLIENT_ID"],
                                  ws["MLGATE_READER_CLIENT_SECRET"], authority=cfg.url,
                                  disable_instance_discovery=True)
    return cred.get_token(cfg.scope).token


def remember(*secrets):
    """compat.sh checks afterwards that none of these appears in the server's or CLI's log."""
    path = os.environ.get("MLGATE_SEEN_SECRETS")
    if path:
        with open(path, "a") as f:
            for s in secrets:
                f.write(s + "\n")


def call(cfg, method, url, token):
    return requests.request(method, url, headers={"Authorization": "Bearer " + token},
                            verify=cfg.ca, timeout=30)


def score(cfg, uri, credential=None):
    # The seed's scoring call.
    headers = {"Content-Type": "application/json"}
    if credential is not None:
        headers["Authorization"] = "Bearer " + credential
    return requests.post(uri, INPUT, headers=headers, verify=cfg.ca, timeout=30)


def test_key_auth_get_keys_score_regenerate(cfg, ws):
    token = owner_token(cfg)
    svc = call(cfg, "GET", service_url(cfg, ws, "compat-key"), token)
    assert svc.status_code == 200, svc.text
    svc = svc.json()
    assert svc["state"] == "Healthy" and svc["authEnabled"] is True, svc
    uri = svc["scoringUri"]

    r = score(cfg, uri)
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"].startswith("Bearer")

    keys = call(cfg, "POST", service_url(cfg, ws, "compat-key", "/listKeys"), token)
    assert keys.status_code == 200, keys.text
    primary, secondary = keys.json()["primaryKey"], keys.json()["secondaryKey"]
    remember(primary, secondary)
    for key in (primary, secondary):
        r = score(cfg, uri, key)
        assert r.status_code == 200, r.text
        assert r.json() == EXPECTED

    regen = requests.post(service_url(cfg, ws, "compat-key", "/regenerateKeys"),
                          json={"keyType": "Primary"},
                          headers={"Authorization": "Bearer " + token}, verify=cfg.ca, timeout=30)
    assert regen.status_code == 200, regen.text
    assert score(cfg, uri, primary).status_code == 401
    assert score(cfg, uri, secondary).status_code == 200
    remember(regen.json()["primaryKey"])
    assert score(cfg, uri, regen.json()["primaryKey"]).status_code == 200


def test_token_auth_with_a_reader(cfg, ws):
    token = reader_token(cfg, ws)
    # Reader may not see keys...
    denied = call(cfg, "POST", service_url(cfg, ws, "compat-key", "/listKeys"), token)
    assert denied.status_code == 403, denied.text
    assert denied.json()["error"]["code"] == "AuthorizationFailed"
    # ...but may get a scoring token: token, refresh_by = service.get_token().
    svc = call(cfg, "GET", service_url(cfg, ws, "compat-token"), token).json()
    assert svc["tokenAuthEnabled"] is True and svc["authEnabled"] is False, svc
    t = call(cfg, "POST", service_url(cfg, ws, "compat-token", "/token"), token)
    assert t.status_code == 200, t.text
    t = t.json()
    remember(t["accessToken"])
    assert t["tokenType"] == "Bearer" and t["refreshAfter"] < t["expiryOn"], t
    r = score(cfg, svc["scoringUri"], t["accessToken"])
    assert r.status_code == 200, r.text
    assert r.json() == EXPECTED
    # The token is for that one service; the management token is for none.
    key_uri = svc["scoringUri"].replace("compat-token", "compat-key")
    assert score(cfg, key_uri, t["accessToken"]).status_code == 401
    assert score(cfg, svc["scoringUri"], token).status_code == 401

"""The seed's walkthrough: a service principal made with `create-for-rbac --sdk-auth` and given
Owner on a workspace by `ml workspace share` reads the workspace with a token from the seed's
ADAL snippet (only the authority host changed); a principal created with the Reader role is
refused a write with 403 AuthorizationFailed."""

import os

import adal
import pytest
import requests

WS_ENV = ("MLGATE_SUBSCRIPTION_ID", "MLGATE_RESOURCE_GROUP", "MLGATE_WORKSPACE",
          "MLGATE_READER_CLIENT_ID", "MLGATE_READER_CLIENT_SECRET")


@pytest.fixture(scope="module")
def ws():
    missing = [k for k in WS_ENV if not os.environ.get(k)]
    if missing:
        pytest.fail("compat.sh did not export " + ", ".join(missing))
    return {k: os.environ[k] for k in WS_ENV}


def seed_token(cfg, client_id, client_secret):
    # The Azure ML notebook's snippet; only the authority host differs.
    auth_context = adal.AuthenticationContext(cfg.url + "/" + cfg.tenant_id, validate_authority=False)
    token_response = auth_context.acquire_token_with_client_credentials(
        "https://management.azure.com/", client_id, client_secret)
    return token_response["accessToken"]


def workspace_url(cfg, ws):
    return (f"{cfg.url}/subscriptions/{ws['MLGATE_SUBSCRIPTION_ID']}/resourceGroups/"
            f"{ws['MLGATE_RESOURCE_GROUP']}/providers/Microsoft.MachineLearningServices/workspaces/"
            f"{ws['MLGATE_WORKSPACE']}?api-version=2024-04-01")


def test_owner_reads_the_workspace_with_the_seed_adal_token(cfg, ws):
    token = seed_token(cfg, cfg.client_id, cfg.client_secret)
    r = requests.get(workspace_url(cfg, ws), headers={"Authorization": "Bearer " + token},
                     verify=cfg.ca, timeout=15)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == ws["MLGATE_WORKSPACE"]
    assert body["type"] == "Microsoft.MachineLearningServices/workspaces"
    # Owner may also write.
    w = requests.put(workspace_url(cfg, ws), json={"properties": {"description": "by owner"}},
                     headers={"Authorization": "Bearer " + token}, verify=cfg.ca, timeout=15)
    assert w.status_code == 200, w.text


def test_reader_reads_but_is_refused_a_write(cfg, ws):
    token = seed_token(cfg, ws["MLGATE_READER_CLIENT_ID"], ws["MLGATE_READER_CLIENT_SECRET"])
    headers = {"Authorization": "Bearer " + token}
    r = requests.get(workspace_url(cfg, ws), headers=headers, verify=cfg.ca, timeout=15)
    assert r.status_code == 200, r.text
    w = requests.put(workspace_url(cfg, ws), json={"properties": {"description": "by reader"}},
                     headers=headers, verify=cfg.ca, timeout=15)
    assert w.status_code == 403, w.text
    err = w.json()["error"]
    assert err["code"] == "AuthorizationFailed"
    assert "Microsoft.MachineLearningServices/workspaces/write" in err["message"]


def test_no_token_is_401_with_a_bearer_challenge(cfg, ws):
    r = requests.get(workspace_url(cfg, ws), verify=cfg.ca, timeout=15)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")

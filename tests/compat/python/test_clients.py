"""Real Microsoft client libraries (adal, msal, azure-identity) and a generic
OIDC verifier (PyJWT) against a live mlgate server. See conftest.py for the
environment and docs /work/shared/compat.md for the interface."""

import time
from urllib.parse import urlparse

import adal
import jwt
import msal
import pytest
import requests
from azure.identity import ClientSecretCredential


def assert_me(cfg, token):
    """The token is accepted by mlgate's own API and names the service principal."""
    r = cfg.me(token)
    assert r.status_code == 200, r.text[:500]
    me = r.json()
    assert me["appId"] == cfg.client_id
    assert me["type"] == "ServicePrincipal"


def msal_app(cfg, tenant, secret=None):
    return msal.ConfidentialClientApplication(
        cfg.client_id,
        client_credential=secret or cfg.client_secret,
        authority=f"{cfg.url}/{tenant}",
        instance_discovery=False,
    )


def tamper(token):
    """Change one character in the middle of the signature segment."""
    head, body, sig = token.split(".")
    i = len(sig) // 2
    return ".".join([head, body, sig[:i] + ("A" if sig[i] != "A" else "B") + sig[i + 1:]])


@pytest.fixture(scope="session")
def v2_token(cfg):
    result = msal_app(cfg, cfg.tenant_id).acquire_token_for_client(scopes=[cfg.scope])
    assert "access_token" in result, result
    return result["access_token"]


@pytest.fixture(scope="session")
def v1_token(cfg):
    ctx = adal.AuthenticationContext(f"{cfg.url}/{cfg.tenant_id}", validate_authority=False)
    return ctx.acquire_token_with_client_credentials(
        cfg.resource, cfg.client_id, cfg.client_secret)["accessToken"]


# --- mlgate's own API ---------------------------------------------------------

@pytest.mark.parametrize("auth", [None, "Bearer not-a-jwt"])
def test_me_rejects_missing_or_bad_token(cfg, auth):
    r = cfg.get("/api/v1/me", headers={"Authorization": auth} if auth else {})
    assert r.status_code == 401


def test_me_rejects_tampered_token(cfg, v2_token):
    assert cfg.me(tamper(v2_token)).status_code == 401


# --- ADAL (v1 endpoint) ---------------------------------------------------------

def test_adal_client_credentials(cfg, tenant):
    ctx = adal.AuthenticationContext(f"{cfg.url}/{tenant}", validate_authority=False)
    token = ctx.acquire_token_with_client_credentials(
        cfg.resource, cfg.client_id, cfg.client_secret)
    assert token["accessToken"]
    assert token["tokenType"] == "Bearer"
    assert token["expiresIn"] >= 300
    assert_me(cfg, token["accessToken"])


def test_adal_wrong_secret_is_invalid_client(cfg):
    ctx = adal.AuthenticationContext(f"{cfg.url}/{cfg.tenant_id}", validate_authority=False)
    with pytest.raises(adal.AdalError) as err:
        ctx.acquire_token_with_client_credentials(cfg.resource, cfg.client_id, "wrong-secret")
    assert (err.value.error_response or {}).get("error") == "invalid_client"


# --- MSAL (v2 endpoint) ---------------------------------------------------------

def test_msal_client_credentials_and_cache(cfg, tenant):
    app = msal_app(cfg, tenant)
    first = app.acquire_token_for_client(scopes=[cfg.scope])
    assert "access_token" in first, first
    assert first["token_type"].lower() == "bearer"
    assert first["expires_in"] >= 300
    assert first.get("token_source") == "identity_provider"
    assert_me(cfg, first["access_token"])

    # Served from msal's cache: needs > 5 min lifetime and `scope` echoed as requested.
    second = app.acquire_token_for_client(scopes=[cfg.scope])
    assert second.get("token_source") == "cache", second.get("token_source")
    assert second["access_token"] == first["access_token"]


def test_msal_wrong_secret_is_invalid_client(cfg):
    result = msal_app(cfg, cfg.tenant_id, secret="wrong-secret").acquire_token_for_client(
        scopes=[cfg.scope])
    assert "access_token" not in result
    assert result.get("error") == "invalid_client", result


def test_wrong_secret_error_shape(cfg):
    """Azure's error body, answered with 401 (msal caches identical 400s for 60 s)."""
    token_endpoint = cfg.discovery(cfg.tenant_id)["token_endpoint"]
    r = requests.post(token_endpoint, verify=cfg.ca, timeout=15, data={
        "grant_type": "client_credentials", "client_id": cfg.client_id,
        "client_secret": "wrong-secret", "scope": cfg.scope})
    assert r.status_code == 401, r.text[:500]
    body = r.json()
    assert body["error"] == "invalid_client"
    assert body["error_description"]
    assert isinstance(body["error_codes"], list) and body["error_codes"]
    assert body["trace_id"] and body["correlation_id"] and body["timestamp"]


# --- azure-identity -----------------------------------------------------------

def test_azure_identity_client_secret_credential(cfg, tenant):
    cred = ClientSecretCredential(
        tenant, cfg.client_id, cfg.client_secret,
        authority=cfg.url, disable_instance_discovery=True)
    token = cred.get_token(cfg.scope)
    assert token.token
    assert token.expires_on >= time.time() + 290
    assert_me(cfg, token.token)


# --- generic OIDC verification with PyJWT ----------------------------------------

@pytest.mark.parametrize("v2", [True, False], ids=["v2", "v1"])
def test_discovery_document(cfg, tenant, v2):
    disc = cfg.discovery(tenant, v2=v2)
    base = urlparse(cfg.url)
    for field in ("issuer", "authorization_endpoint", "token_endpoint",
                  "device_authorization_endpoint", "jwks_uri"):
        assert urlparse(disc[field]).scheme == "https", (field, disc.get(field))
    issuer = urlparse(disc["issuer"])
    # Same scheme and host:port as the authority; tenant GUID first, even when asked by domain.
    assert (issuer.scheme, issuer.netloc) == (base.scheme, base.netloc)
    assert issuer.path.split("/")[1] == cfg.tenant_id
    assert "ES256" in disc["id_token_signing_alg_values_supported"]


def verify(cfg, token, disc, **overrides):
    """Verify signature and claims the way any OIDC resource server would."""
    algs = disc["id_token_signing_alg_values_supported"]
    assert jwt.get_unverified_header(token)["alg"] in algs
    key = jwt.PyJWKClient(disc["jwks_uri"], ssl_context=cfg.ssl_context()).get_signing_key_from_jwt(token)
    aud = jwt.decode(token, options={"verify_signature": False})["aud"]
    assert aud in (cfg.resource, cfg.resource.rstrip("/")), aud
    kwargs = dict(algorithms=algs, audience=aud, issuer=disc["issuer"],
                  options={"require": ["exp", "iss", "aud"]})
    kwargs.update(overrides)
    return jwt.decode(token, key, **kwargs)


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_token_verifies_against_discovery(cfg, version, request):
    token = request.getfixturevalue(version + "_token")
    disc = cfg.discovery(cfg.tenant_id, v2=(version == "v2"))
    claims = verify(cfg, token, disc)
    assert claims["iss"] == disc["issuer"]
    assert claims["exp"] > time.time() + 290

    with pytest.raises(jwt.InvalidAudienceError):
        verify(cfg, token, disc, audience="https://wrong.example.com/")
    with pytest.raises(jwt.InvalidIssuerError):
        verify(cfg, token, disc, issuer=disc["issuer"] + "wrong/")
    with pytest.raises(jwt.InvalidSignatureError):
        verify(cfg, tamper(token), disc)

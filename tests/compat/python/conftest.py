"""Shared settings for the client-compatibility tests.

The orchestrator (scripts/compat.sh) starts a live mlgate server, creates a
service principal and exports:

  MLGATE_URL            https://127.0.0.1:PORT (no trailing slash)
  MLGATE_CA             CA certificate (PEM) that signed the server certificate
  MLGATE_TENANT_ID      tenant GUID
  MLGATE_TENANT_DOMAIN  tenant domain name, e.g. mlgate.local
  MLGATE_CLIENT_ID      service principal's client (app) id
  MLGATE_CLIENT_SECRET  service principal's secret
  MLGATE_RESOURCE       resource URI, e.g. https://management.azure.com/
"""

import os
import ssl
from dataclasses import dataclass, field

import pytest
import requests

REQUIRED = (
    "MLGATE_URL",
    "MLGATE_CA",
    "MLGATE_TENANT_ID",
    "MLGATE_TENANT_DOMAIN",
    "MLGATE_CLIENT_ID",
    "MLGATE_CLIENT_SECRET",
    "MLGATE_RESOURCE",
)


@dataclass(frozen=True)
class Cfg:
    url: str
    ca: str
    tenant_id: str
    tenant_domain: str
    client_id: str
    client_secret: str = field(repr=False)  # never shown in assertion output
    resource: str

    @property
    def scope(self) -> str:
        """`<resource>/.default` with exactly one slash before `.default`."""
        return self.resource.rstrip("/") + "/.default"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca)

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, verify=self.ca, timeout=15, **kw)

    def me(self, token: str) -> requests.Response:
        return self.get("/api/v1/me", headers={"Authorization": "Bearer " + token})

    def discovery(self, tenant: str, v2: bool = True) -> dict:
        prefix = "/v2.0" if v2 else ""
        r = self.get(f"/{tenant}{prefix}/.well-known/openid-configuration")
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(scope="session")
def cfg() -> Cfg:
    if not os.environ.get("MLGATE_URL"):
        pytest.skip("MLGATE_URL not set: run through scripts/compat.sh")
    missing = [k for k in REQUIRED if not os.environ.get(k)]
    if missing:
        pytest.fail("missing environment: " + ", ".join(missing))
    # adal, msal and azure-identity all go through requests, which trusts this.
    os.environ["REQUESTS_CA_BUNDLE"] = os.environ["MLGATE_CA"]
    return Cfg(
        url=os.environ["MLGATE_URL"].rstrip("/"),
        ca=os.environ["MLGATE_CA"],
        tenant_id=os.environ["MLGATE_TENANT_ID"],
        tenant_domain=os.environ["MLGATE_TENANT_DOMAIN"],
        client_id=os.environ["MLGATE_CLIENT_ID"],
        client_secret=os.environ["MLGATE_CLIENT_SECRET"],
        resource=os.environ["MLGATE_RESOURCE"],
    )


@pytest.fixture(params=["tenant_id", "tenant_domain"])
def tenant(request, cfg) -> str:
    """The tenant as it appears in the authority URL: its GUID or its domain name."""
    return getattr(cfg, request.param)

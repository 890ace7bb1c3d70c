"""Shared set-up of the tests that run Microsoft's own clients (azure-cli, azureml-core) against a
live `mlgate serve` started by scripts/compat-azure.sh. Nothing here patches, mocks or wraps a
Microsoft package: the clients are configured only the way a user configures them
(environment variables, `az cloud register`, config files, the CA bundle)."""

import json
import os
import re
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@dataclass(frozen=True)
class Env:
    url: str
    ca: str
    tenant_id: str
    subscription_id: str
    admin: str
    admin_password: str
    resource_group: str
    workspace: str
    key_service: str
    token_service: str
    model: str
    sp: dict
    reader: dict
    work: str

    @property
    def host(self):
        return urlsplit(self.url).netloc


@pytest.fixture(scope="session")
def env():
    e = os.environ
    return Env(
        url=e["MLGATE_URL"],
        ca=e["MLGATE_CA"],
        tenant_id=e["MLGATE_TENANT_ID"],
        subscription_id=e["MLGATE_SUBSCRIPTION_ID"],
        admin=e["MLGATE_ADMIN"],
        admin_password=e["MLGATE_ADMIN_PASSWORD"],
        resource_group=e["MLGATE_RESOURCE_GROUP"],
        workspace=e["MLGATE_WORKSPACE"],
        key_service=e["MLGATE_KEY_SERVICE"],
        token_service=e["MLGATE_TOKEN_SERVICE"],
        model=e["MLGATE_MODEL"],
        sp=json.load(open(e["MLGATE_SP_JSON"])),
        reader=json.load(open(e["MLGATE_READER_JSON"])),
        work=e["MLGATE_WORK"],
    )


# Where a client logs a connection or a request: urllib3's "Starting new HTTPS connection (1):
# host:port" and az's "Request URL: 'https://host/...'".
_CONNECTION = re.compile(r"Starting new HTTPS? connection \(\d+\): ([^\s]+)")
_REQUEST_URL = re.compile(r"Request URL: '(https?://[^/']+)")


def hosts_in_log(text):
    """Every host:port a client's debug log shows it connecting to or requesting."""
    hosts = set(_CONNECTION.findall(text))
    hosts.update(urlsplit(u).netloc for u in _REQUEST_URL.findall(text))
    return hosts


def assert_only_mlgate(text, env, what, expect_traffic=True):
    hosts = hosts_in_log(text)
    if expect_traffic:
        assert hosts, f"{what}: the debug log shows no connection at all; is debug logging on?"
    others = {h for h in hosts if h != env.host}
    assert not others, f"{what} talked to hosts other than mlgate ({env.host}): {sorted(others)}"
    microsoft = [h for h in hosts if re.search(r"microsoft|azure\.(com|net)|windows\.net", h)]
    assert not microsoft, f"{what} contacted Microsoft: {microsoft}"


def remember(env, *secrets):
    """Records credentials a client received; scripts/compat-azure.sh then checks that none of
    them appears in the server's log."""
    with open(os.path.join(env.work, "seen-secrets"), "a") as f:
        for s in secrets:
            if s:
                f.write(s + "\n")

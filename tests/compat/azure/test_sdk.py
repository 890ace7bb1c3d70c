"""The Azure ML SDK v1 (azureml-core 1.61 from PyPI, unmodified) against mlgate: the snippets of
the Azure ML authentication guide, the workspace and the web-service calls the issue's "Done
when" lists. Run with the azureml venv's python (scripts/compat-azure.sh).

Configuration is only what a user sets: ARM_CLOUD_METADATA_URL (read once, at import),
AZUREML_CURRENT_CLOUD, AZURE_CONFIG_DIR, REQUESTS_CA_BUNDLE/SSL_CERT_FILE, the guide's
environment variables, a config.json. The SDK logs at DEBUG into a file; the last test reads it
and asserts that every connection went to mlgate."""

import json
import logging
import os
import re
import subprocess
import sys
import threading

import pytest
import requests

import devicelogin
from conftest import assert_only_mlgate, remember

LOG = os.path.join(os.environ["MLGATE_WORK"], "sdk-debug.log")
logging.basicConfig(level=logging.DEBUG, filename=LOG, filemode="a",
                    format="%(asctime)s %(name)s %(levelname)s %(message)s")

from azureml.core import Workspace  # noqa: E402  (after logging, so the import is logged too)
from azureml.core.authentication import (  # noqa: E402
    InteractiveLoginAuthentication,
    ServicePrincipalAuthentication,
)
from azureml.core.model import Model  # noqa: E402
from azureml.core.webservice import AksWebservice, Webservice  # noqa: E402

STATE = {}
DATA = json.dumps({"data": [[1.0, 2.0], [3.0, 4.0]]})
EXPECTED = [5.5, 11.5]


def sp_auth(sp):
    # The guide's snippet, as written: no cloud named.
    return ServicePrincipalAuthentication(
        tenant_id=sp["tenantId"],
        service_principal_id=sp["clientId"],
        service_principal_password=sp["clientSecret"],
    )


@pytest.fixture(scope="module")
def ws(env):
    if "ws" not in STATE:
        STATE["ws"] = Workspace.get(name=env.workspace, auth=sp_auth(env.sp),
                                    subscription_id=env.subscription_id,
                                    resource_group=env.resource_group)
    return STATE["ws"]


def score(uri, env, credential=None):
    headers = {"Content-Type": "application/json"}
    if credential:
        headers["Authorization"] = "Bearer " + credential
    return requests.post(uri, data=DATA, headers=headers, verify=env.ca, timeout=60)


def test_01_the_cloud_comes_from_arm_cloud_metadata_url(env):
    from azureml._vendor.azure_cli_core.cloud import KNOWN_CLOUDS
    names = [c.name for c in KNOWN_CLOUDS]
    assert "mlgate" in names
    mlgate = next(c for c in KNOWN_CLOUDS if c.name == "mlgate")
    assert mlgate.endpoints.resource_manager.rstrip("/") == env.url
    assert mlgate.endpoints.active_directory == env.url + "/adfs/t"


def test_02_service_principal_workspace_get_and_details(env, ws):
    details = ws.get_details()
    assert details["name"] == env.workspace
    assert details["id"] == (f"/subscriptions/{env.subscription_id}/resourceGroups/"
                             f"{env.resource_group}/providers/Microsoft.MachineLearningServices/"
                             f"workspaces/{env.workspace}")
    assert details["discoveryUrl"].startswith(env.url + "/discovery/workspaces/")
    assert ws.subscription_id == env.subscription_id and ws.resource_group == env.resource_group


def write_config(env, directory):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump({"subscription_id": env.subscription_id, "resource_group": env.resource_group,
                   "workspace_name": env.workspace}, f)
    return os.path.join(directory, "config.json")


def run_script(env, code, extra_env, timeout=180):
    """Runs SDK code in a fresh interpreter (for what reads the environment at start-up)."""
    e = dict(os.environ, **extra_env)
    return subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True,
                          timeout=timeout, cwd=env.work)


def test_03_from_config_with_azureml_service_principal_variables(env):
    path = write_config(env, os.path.join(env.work, "from-config-sdk"))
    code = f"""
import logging
logging.basicConfig(level=logging.DEBUG, filename={LOG!r}, filemode="a")
from azureml.core import Workspace
ws = Workspace.from_config(path={path!r})
print("WS", ws.name, ws.get_details()["id"])
"""
    p = run_script(env, code, {
        "AZUREML_SERVICE_PRINCIPAL_TENANT_ID": env.sp["tenantId"],
        "AZUREML_SERVICE_PRINCIPAL_ID": env.sp["clientId"],
        "AZUREML_SERVICE_PRINCIPAL_PASSWORD": env.sp["clientSecret"],
        "AZURE_CONFIG_DIR": os.path.join(env.work, "aml-config-envsp"),
    })
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"WS {env.workspace} " in p.stdout


def test_04_from_config_with_the_guides_aml_variables(env):
    path = write_config(env, os.path.join(env.work, "from-config-guide"))
    # The guide's snippet: the user's code reads its own variables.
    code = f"""
import logging, os
logging.basicConfig(level=logging.DEBUG, filename={LOG!r}, filemode="a")
from azureml.core import Workspace
from azureml.core.authentication import ServicePrincipalAuthentication
svc_pr = ServicePrincipalAuthentication(
    tenant_id=os.environ["AML_TENANT_ID"],
    service_principal_id=os.environ["AML_PRINCIPAL_ID"],
    service_principal_password=os.environ["AML_PRINCIPAL_PASS"])
ws = Workspace.from_config(path={path!r}, auth=svc_pr)
print("WS", ws.name, ws.get_details()["id"])
"""
    p = run_script(env, code, {
        "AML_TENANT_ID": env.sp["tenantId"],
        "AML_PRINCIPAL_ID": env.sp["clientId"],
        "AML_PRINCIPAL_PASS": env.sp["clientSecret"],
        "AZURE_CONFIG_DIR": os.path.join(env.work, "aml-config-guide"),
    })
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"WS {env.workspace} " in p.stdout


def test_05_interactive_login_with_device_code(env):
    code = f"""
import logging
logging.basicConfig(level=logging.DEBUG, filename={LOG!r}, filemode="a")
# What a user sees on the terminal: warnings (the device-code prompt) on stderr.
terminal = logging.StreamHandler()
terminal.setLevel(logging.WARNING)
logging.getLogger().addHandler(terminal)
from azureml.core import Workspace
from azureml.core.authentication import InteractiveLoginAuthentication
auth = InteractiveLoginAuthentication(tenant_id={env.tenant_id!r})
ws = Workspace.get(name={env.workspace!r}, auth=auth, subscription_id={env.subscription_id!r},
                   resource_group={env.resource_group!r})
print("WS", ws.name, flush=True)
"""
    e = dict(os.environ, AZURE_CONFIG_DIR=os.path.join(env.work, "aml-config-interactive"))
    # No display: the SDK falls back from the browser to the device code, as on a server.
    e.pop("DISPLAY", None)
    e.pop("WAYLAND_DISPLAY", None)
    p = subprocess.Popen([sys.executable, "-c", code], env=e, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, cwd=env.work)
    lines, found = [], threading.Event()

    def read():
        for line in p.stdout:
            lines.append(line)
            if re.search(r"enter the code [A-Z]{4}-?[A-Z]{4}", line):
                found.set()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    assert found.wait(120), "the SDK printed no device code:\n" + "".join(lines[-30:])
    text = "".join(lines)
    user_code = re.search(r"enter the code ([A-Z]{4}-?[A-Z]{4})", text).group(1)
    assert env.url + "/devicelogin" in text
    devicelogin.approve(env.url, env.ca, user_code, env.admin, env.admin_password)
    p.wait(timeout=120)
    t.join(10)
    out = "".join(lines)
    assert p.returncode == 0, out[-3000:]
    assert f"WS {env.workspace}" in out


def test_06_workspace_list(env):
    auth = sp_auth(env.sp)
    by_sub = Workspace.list(env.subscription_id, auth=auth)
    assert env.workspace in by_sub
    by_group = Workspace.list(env.subscription_id, auth=auth, resource_group=env.resource_group)
    assert list(by_group) == [env.workspace]


def test_07_webservice_by_name(env, ws):
    svc = Webservice(ws, env.key_service)
    assert isinstance(svc, AksWebservice)
    assert svc.name == env.key_service and svc.state == "Healthy"
    assert svc.scoring_uri == f"{env.url}/api/v1/service/{env.key_service}/score"
    assert svc.auth_enabled is True and svc.token_auth_enabled is False
    assert svc.num_replicas == 1
    assert any(s.name == env.key_service for s in Webservice.list(ws))
    with pytest.raises(Exception, match="WebserviceNotFound"):
        Webservice(ws, "no-such-service")
    STATE["key_svc"] = svc


def test_08_get_keys_and_run_with_key(env):
    svc = STATE["key_svc"]
    primary, secondary = svc.get_keys()
    remember(env, primary, secondary)
    assert primary and secondary and primary != secondary
    assert svc.run(DATA) == EXPECTED
    assert score(svc.scoring_uri, env).status_code == 401
    assert score(svc.scoring_uri, env, secondary).json() == EXPECTED
    STATE["keys"] = (primary, secondary)


def test_09_regen_key_refuses_the_old_key_at_once(env):
    svc = STATE["key_svc"]
    old_primary, secondary = STATE["keys"]
    svc.regen_key("Primary")
    new_primary, same_secondary = svc.get_keys()
    remember(env, new_primary)
    assert new_primary != old_primary and same_secondary == secondary
    assert score(svc.scoring_uri, env, old_primary).status_code == 401
    assert score(svc.scoring_uri, env, new_primary).json() == EXPECTED
    # The SDK's own session carried the old key: run() gets a 401, fetches the keys, retries.
    assert svc.run(DATA) == EXPECTED


def test_10_get_token_and_run_with_token(env, ws):
    svc = Webservice(ws, env.token_service)
    assert isinstance(svc, AksWebservice) and svc.token_auth_enabled and not svc.auth_enabled
    token, refresh_after = svc.get_token()
    remember(env, token)
    assert token.count(".") == 2 and refresh_after is not None
    assert score(svc.scoring_uri, env, token).json() == EXPECTED
    assert svc.run(DATA) == EXPECTED
    access = svc.get_access_token()
    assert access.token_type == "Bearer" and access.expiry_on > access.refresh_after


def test_11_model_by_name(env, ws):
    m = Model(ws, env.model)
    assert m.name == env.model and m.version == 1 and m.id == f"{env.model}:1"
    assert Model(ws, env.model, version=1).id == m.id
    with pytest.raises(Exception):
        Model(ws, "no-such-model")


def test_12_a_reader_gets_a_token_but_not_keys(env):
    reader_ws = Workspace.get(name=env.workspace, auth=sp_auth(env.reader),
                              subscription_id=env.subscription_id,
                              resource_group=env.resource_group)
    token_svc = Webservice(reader_ws, env.token_service)
    token, _ = token_svc.get_token()
    assert score(token_svc.scoring_uri, env, token).json() == EXPECTED
    key_svc = Webservice(reader_ws, env.key_service)
    with pytest.raises(Exception, match="403"):
        key_svc.get_keys()
    with pytest.raises(Exception, match="403"):
        key_svc.regen_key("Secondary")


def test_13_the_sdk_talked_only_to_mlgate(env):
    logging.shutdown()
    with open(LOG) as f:
        text = f.read()
    assert_only_mlgate(text, env, "azureml-core")
    assert "management.azure.com:443" not in text

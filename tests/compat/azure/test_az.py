"""The Azure CLI (azure-cli 2.91 from PyPI, unmodified) against mlgate, step by step as the issue's
"Done when" lists them. Every `az` call runs with `--debug`; each asserts that the client talked
to mlgate and nothing else. Run with the az virtualenv's python (scripts/compat-azure.sh).

Configuration is only what a user sets: AZURE_CONFIG_DIR, REQUESTS_CA_BUNDLE/SSL_CERT_FILE for
the server's CA, telemetry off, and `az cloud register -n mlgate --endpoint-resource-manager`."""

import base64
import json
import os
import re
import subprocess
import threading
import time
import uuid

import pytest
import requests

import devicelogin
from conftest import assert_only_mlgate, remember

AZ = os.environ.get("MLGATE_AZ", "az")
STATE = {}


def az_env(env, config_dir):
    e = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("AZURE_", "ARM_", "AZUREML_", "MSAL_"))
    }
    e.update(
        AZURE_CONFIG_DIR=config_dir,
        REQUESTS_CA_BUNDLE=env.ca,
        SSL_CERT_FILE=env.ca,
        AZURE_CORE_COLLECT_TELEMETRY="false",
        AZURE_CORE_ONLY_SHOW_ERRORS="false",
        AZURE_CORE_NO_COLOR="true",
    )
    return e


def az(env, *args, config="main", ok=True, output=True, net=True):
    """Runs `az ARGS --debug` in the named config dir; returns parsed JSON (or stdout). With
    `net`, the debug log must show traffic, all of it to mlgate."""
    config_dir = os.path.join(env.work, "az-" + config)
    argv = [AZ, *args, "--debug"] + (["-o", "json"] if output else [])
    p = subprocess.run(argv, env=az_env(env, config_dir), capture_output=True, text=True, timeout=300)
    log = os.path.join(env.work, "az-debug.log")
    with open(log, "a") as f:
        f.write(f"\n===== az {' '.join(args[:3])} ... (rc {p.returncode})\n{p.stderr}")
    assert_only_mlgate(p.stderr, env, "az " + " ".join(args[:2]), expect_traffic=net)
    if ok:
        tail = "\n".join(line for line in p.stderr.splitlines() if "ERROR" in line)
        assert p.returncode == 0, f"az {' '.join(args[:3])} failed ({p.returncode}): {tail}"
    else:
        assert p.returncode != 0, f"az {' '.join(args[:3])} should have failed"
        return p
    out = p.stdout.strip()
    if not output or not out:
        return out
    return json.loads(out)


def jwt_claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def register_cloud(env, config):
    # The user's trailing slash is kept by az; mlgate accepts the `//` it makes.
    az(env, "cloud", "register", "-n", "mlgate", "--endpoint-resource-manager", env.url + "/",
       config=config, output=False)
    az(env, "cloud", "set", "-n", "mlgate", config=config, output=False, net=False)


def client_credentials(env, app_id, secret):
    r = requests.post(
        f"{env.url}/{env.tenant_id}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": app_id, "client_secret": secret,
              "scope": "https://management.azure.com/.default"},
        verify=env.ca, timeout=30)
    return r


def test_01_cloud_register_discovers_endpoints(env):
    register_cloud(env, "main")
    cloud = az(env, "cloud", "show", "-n", "mlgate", net=False)
    e = cloud["endpoints"]
    assert e["activeDirectory"] == env.url + "/adfs/t"
    assert e["resourceManager"].rstrip("/") == env.url
    assert e["microsoftGraphResourceId"].rstrip("/") == env.url
    assert e["activeDirectoryResourceId"] == "https://management.azure.com/"
    assert cloud["isActive"]


def test_02_login_with_device_code_approved_over_http(env):
    config_dir = os.path.join(env.work, "az-main")
    argv = [AZ, "login", "--use-device-code", "--debug", "-o", "json"]
    p = subprocess.Popen(argv, env=az_env(env, config_dir), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    lines, found = [], threading.Event()

    def read():
        for line in p.stderr:
            lines.append(line)
            if re.search(r"enter the code [A-Z]{4}-?[A-Z]{4}", line):
                found.set()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    assert found.wait(120), "az printed no device code:\n" + "".join(lines[-20:])
    text = "".join(lines)
    code = re.search(r"enter the code ([A-Z]{4}-?[A-Z]{4})", text).group(1)
    assert env.url + "/devicelogin" in text
    page = devicelogin.approve(env.url, env.ca, code, env.admin, env.admin_password)
    assert "signed in" in page
    out, _ = p.communicate(timeout=120)
    t.join(10)
    stderr = "".join(lines)
    with open(os.path.join(env.work, "az-debug.log"), "a") as f:
        f.write("\n===== az login --use-device-code\n" + stderr)
    assert p.returncode == 0, "".join(l for l in lines if "ERROR" in l)
    assert_only_mlgate(stderr, env, "az login --use-device-code")
    accounts = json.loads(out)
    assert any(a["id"] == env.subscription_id and a["user"]["name"] == env.admin for a in accounts)


def test_03_account_show(env):
    a = az(env, "account", "show", net=False)
    assert a["id"] == env.subscription_id
    assert a["tenantId"] == env.tenant_id
    assert a["user"] == {"name": env.admin, "type": "user"}
    assert a["environmentName"] == "mlgate"


def test_04_account_get_access_token(env):
    t = az(env, "account", "get-access-token")
    remember(env, t["accessToken"])
    claims = jwt_claims(t["accessToken"])
    assert claims["tid"] == env.tenant_id and claims["aud"] == "https://management.azure.com/"
    assert (claims.get("upn") or claims.get("preferred_username")) == env.admin
    assert t["subscription"] == env.subscription_id
    me = requests.get(env.url + "/api/v1/me", headers={"Authorization": "Bearer " + t["accessToken"]},
                      verify=env.ca, timeout=30)
    assert me.status_code == 200 and me.json()["userPrincipalName"] == env.admin


def test_05_group_create_and_list(env):
    g = az(env, "group", "create", "-n", "az-rg", "-l", "local")
    assert g["name"] == "az-rg" and g["properties"]["provisioningState"] == "Succeeded"
    names = [x["name"] for x in az(env, "group", "list")]
    assert "az-rg" in names and env.resource_group in names


def test_06_signed_in_user_show(env):
    me = az(env, "ad", "signed-in-user", "show")
    assert me["userPrincipalName"] == env.admin
    uuid.UUID(me["id"])
    STATE["admin_oid"] = me["id"]


def test_07_create_for_rbac_sdk_auth(env):
    out = az(env, "ad", "sp", "create-for-rbac", "--sdk-auth", "--name", "ml-auth")
    remember(env, out["clientSecret"])
    assert out["tenantId"] == env.tenant_id and out["subscriptionId"] == env.subscription_id
    assert out["activeDirectoryEndpointUrl"] == env.url + "/adfs/t"
    assert out["resourceManagerEndpointUrl"].rstrip("/") == env.url
    assert client_credentials(env, out["clientId"], out["clientSecret"]).status_code == 200
    STATE["ml_auth"] = out


def test_08_create_for_rbac_with_role_and_scope(env):
    scope = f"/subscriptions/{env.subscription_id}/resourceGroups/az-rg"
    out = az(env, "ad", "sp", "create-for-rbac", "--sdk-auth", "--name", "ml-auth-rg",
             "--role", "Contributor", "--scopes", scope)
    remember(env, out["clientSecret"])
    STATE["ml_auth_rg"] = out
    ra = az(env, "role", "assignment", "list", "--assignee", out["clientId"], "--all")
    assert [(r["roleDefinitionName"], r["scope"]) for r in ra] == [("Contributor", scope)]
    # Running it again is idempotent: the same application, a new secret, the assignment kept.
    again = az(env, "ad", "sp", "create-for-rbac", "--sdk-auth", "--name", "ml-auth-rg",
               "--role", "Contributor", "--scopes", scope)
    remember(env, again["clientSecret"])
    assert again["clientId"] == out["clientId"] and again["clientSecret"] != out["clientSecret"]
    assert client_credentials(env, out["clientId"], out["clientSecret"]).status_code == 401
    STATE["ml_auth_rg"] = again


def test_09_login_with_create_for_rbac_output(env):
    sp = STATE["ml_auth_rg"]
    register_cloud(env, "sp")
    accounts = az(env, "login", "--service-principal", "-u", sp["clientId"], "-p", sp["clientSecret"],
                  "--tenant", sp["tenantId"], config="sp")
    assert [a["id"] for a in accounts] == [env.subscription_id]
    assert accounts[0]["user"] == {"name": sp["clientId"], "type": "servicePrincipal"}
    groups = [g["name"] for g in az(env, "group", "list", config="sp")]
    assert groups == ["az-rg"], "the principal sees only the group it holds a role on"
    p = az(env, "group", "create", "-n", "not-mine", "-l", "local", config="sp", ok=False)
    assert "AuthorizationFailed" in p.stderr


def test_10_role_assignment_create_list_delete(env):
    sp = STATE["ml_auth"]
    sub = f"/subscriptions/{env.subscription_id}"
    a = az(env, "role", "assignment", "create", "--assignee", sp["clientId"], "--role", "Reader",
           "--scope", sub)
    assert a["principalType"] == "ServicePrincipal" and a["scope"] == sub
    assert a["roleDefinitionId"].endswith("/acdd72a7-3385-48ef-bd42-f606fba81ae7")
    # A second create is Azure's 409 RoleAssignmentExists, which az takes as done.
    again = az(env, "role", "assignment", "create", "--assignee", sp["clientId"], "--role", "Reader",
               "--scope", sub)
    assert again["id"] == a["id"]
    listed = az(env, "role", "assignment", "list", "--assignee", sp["clientId"], "--scope", sub)
    assert [(r["roleDefinitionName"], r["principalId"]) for r in listed] == [("Reader", a["principalId"])]
    everything = az(env, "role", "assignment", "list", "--all")
    assert any(r["roleDefinitionName"] == "Owner" and r["principalName"] == env.admin for r in everything)
    # The assignment is mlgate's RBAC: the principal can now read the subscription's groups.
    token = client_credentials(env, sp["clientId"], sp["clientSecret"]).json()["access_token"]
    r = requests.get(f"{env.url}{sub}/resourcegroups?api-version=2022-09-01",
                     headers={"Authorization": "Bearer " + token}, verify=env.ca, timeout=30)
    assert r.status_code == 200
    az(env, "role", "assignment", "delete", "--assignee", sp["clientId"], "--role", "Reader",
       "--scope", sub, output=False)
    assert az(env, "role", "assignment", "list", "--assignee", sp["clientId"], "--all") == []
    r = requests.get(f"{env.url}{sub}/resourcegroups/az-rg?api-version=2022-09-01",
                     headers={"Authorization": "Bearer " + token}, verify=env.ca, timeout=30)
    assert r.status_code == 403, "revoked at once"


def test_11_role_definition_list_and_create(env):
    readers = az(env, "role", "definition", "list", "--name", "Reader")
    assert len(readers) == 1 and readers[0]["roleType"] == "BuiltInRole"
    assert readers[0]["permissions"][0]["actions"] == ["*/read"]
    role = {
        "Name": "Model Reader (az)",
        "IsCustom": True,
        "Description": "Reads registered models.",
        "Actions": ["Microsoft.MachineLearningServices/workspaces/models/read"],
        "NotActions": [],
        "DataActions": [],
        "NotDataActions": [],
        "AssignableScopes": [f"/subscriptions/{env.subscription_id}"],
    }
    path = os.path.join(env.work, "role.json")
    with open(path, "w") as f:
        json.dump(role, f)
    made = az(env, "role", "definition", "create", "--role-definition", "@" + path)
    assert made["roleName"] == role["Name"] and made["roleType"] == "CustomRole"
    custom = az(env, "role", "definition", "list", "--custom-role-only", "true")
    assert [r["roleName"] for r in custom] == [role["Name"]]
    # The new role is assignable by name at once.
    sp = STATE["ml_auth"]
    a = az(env, "role", "assignment", "create", "--assignee", sp["clientId"], "--role", role["Name"],
           "--scope", f"/subscriptions/{env.subscription_id}/resourceGroups/az-rg")
    assert a["roleDefinitionId"] == made["id"]


def test_12_sp_show_and_list(env):
    sp = STATE["ml_auth"]
    shown = az(env, "ad", "sp", "show", "--id", sp["clientId"])
    assert shown["appId"] == sp["clientId"] and shown["displayName"] == "ml-auth"
    assert shown["servicePrincipalNames"][0] == sp["clientId"]
    assert shown["id"] != sp["clientId"], "the principal has its own object id"
    by_oid = az(env, "ad", "sp", "show", "--id", shown["id"])
    assert by_oid["appId"] == sp["clientId"]
    names = sorted(s["displayName"] for s in az(env, "ad", "sp", "list", "--display-name", "ml-auth"))
    assert names == ["ml-auth", "ml-auth-rg"]
    assert az(env, "ad", "sp", "list", "--display-name", "no-such-name") == []
    app = az(env, "ad", "app", "show", "--id", sp["clientId"])
    assert app["appId"] == sp["clientId"] and app["id"] != shown["id"]
    assert len(app["passwordCredentials"]) == 1, "create-for-rbac put the secret on the application"


def test_13_sp_credential_reset(env):
    sp = STATE["ml_auth"]
    new = az(env, "ad", "sp", "credential", "reset", "--id", sp["clientId"])
    remember(env, new["password"])
    assert new["appId"] == sp["clientId"] and new["tenant"] == env.tenant_id
    assert client_credentials(env, sp["clientId"], new["password"]).status_code == 200
    shown = az(env, "ad", "sp", "show", "--id", sp["clientId"])
    assert len(shown["passwordCredentials"]) == 1
    # Without --append, a second reset replaces the principal's password.
    newer = az(env, "ad", "sp", "credential", "reset", "--id", sp["clientId"])
    remember(env, newer["password"])
    assert client_credentials(env, sp["clientId"], new["password"]).status_code == 401
    assert client_credentials(env, sp["clientId"], newer["password"]).status_code == 200
    STATE["ml_auth_password"] = newer["password"]


def test_14_sp_delete(env):
    sp = STATE["ml_auth"]
    az(env, "ad", "sp", "delete", "--id", sp["clientId"], output=False)
    p = az(env, "ad", "sp", "show", "--id", sp["clientId"], ok=False)
    assert "does not exist" in p.stderr or "not found" in p.stderr.lower()
    r = client_credentials(env, sp["clientId"], STATE["ml_auth_password"])
    assert r.status_code in (400, 401) and r.json()["error"] in ("invalid_client", "unauthorized_client")


def test_15_resource_list_and_show(env):
    ws_id = (f"/subscriptions/{env.subscription_id}/resourceGroups/{env.resource_group}"
             f"/providers/Microsoft.MachineLearningServices/workspaces/{env.workspace}")
    everything = az(env, "resource", "list")
    assert ws_id in [r["id"] for r in everything]
    in_group = az(env, "resource", "list", "-g", env.resource_group,
                  "--resource-type", "Microsoft.MachineLearningServices/workspaces")
    assert [(r["name"], r["type"]) for r in in_group] == [
        (env.workspace, "Microsoft.MachineLearningServices/workspaces")]
    assert az(env, "resource", "list", "-g", "az-rg") == []
    shown = az(env, "resource", "show", "--ids", ws_id)
    assert shown["name"] == env.workspace
    assert shown["properties"]["discoveryUrl"].startswith(env.url + "/discovery/workspaces/")


def test_16_login_without_tenant_and_logout(env):
    # `az login --service-principal` without --tenant is not possible (az requires it); a user
    # login without --tenant went through /tenants in step 2. Log the principal out again.
    az(env, "logout", config="sp", output=False, net=False)
    p = az(env, "account", "show", config="sp", ok=False, net=False)
    assert "az login" in p.stderr


def test_17_login_with_username_and_password_off_port_443(env):
    # In AAD mode MSAL looks the user's realm up at https://{host}/common/userrealm/ without the
    # port; the AD FS authority skips that, so `az login -u -p` works on any port.
    register_cloud(env, "ropc")
    accounts = az(env, "login", "-u", env.admin, "-p", env.admin_password, config="ropc")
    assert [a["user"]["name"] for a in accounts] == [env.admin]
    groups = [g["name"] for g in az(env, "group", "list", config="ropc")]
    assert "az-rg" in groups

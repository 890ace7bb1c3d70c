"""The Azure ML SDK v2 (azure-ai-ml 1.35.2 from PyPI, unmodified) against mlgate: every step of
issue 16's "Done when", in order. Run with the aml2 venv's python (scripts/compat-azure.sh),
against a live server seeded with an ONNX model (`linear`) and three web services, one per
auth mode (`v2-key`, `v2-aml-token`, `v2-aad-token`).

Configuration is only what a user sets: ARM_CLOUD_METADATA_URL (the SDK picks the cloud whose
resource manager that URL names), REQUESTS_CA_BUNDLE/SSL_CERT_FILE, and the credential's
documented options (`authority`, `disable_instance_discovery=True`). The SDK logs at DEBUG into
a file; the last test reads it and asserts that every connection went to mlgate."""

import json
import logging
import os
import time

import pytest
import requests

from conftest import assert_only_mlgate, remember

LOG = os.path.join(os.environ["MLGATE_WORK"], "sdk2-debug.log")
# A handler of its own (pytest's log capture already configured the root logger).
_handler = logging.FileHandler(LOG)
_handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
logging.getLogger().addHandler(_handler)
logging.getLogger().setLevel(logging.DEBUG)

from azure.ai.ml import MLClient  # noqa: E402  (after logging, so the import is logged too)
from azure.ai.ml.entities import (  # noqa: E402
    CodeConfiguration,
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
)
from azure.core.exceptions import HttpResponseError  # noqa: E402
from azure.identity import ClientSecretCredential  # noqa: E402

KEY, TOKEN, AAD = os.environ["MLGATE_V2_SERVICES"].split()
MODEL = os.environ["MLGATE_V2_MODEL"]
STATE = {}
# tests/compat/azure/linear.onnx: Y = X.W + B with W = [[-0.5], [5/13 - 0.5]], B = [0].
ROW = [1.0, 2.0]
EXPECTED = -0.5 + 2.0 * (5.0 / 13.0 - 0.5)


def credential(env, sp):
    # azure-identity's documented options: the authority host, and no instance discovery
    # (which would ask login.microsoftonline.com about any other authority).
    return ClientSecretCredential(sp["tenantId"], sp["clientId"], sp["clientSecret"],
                                  authority=env.url, disable_instance_discovery=True)


def client(env, sp):
    return MLClient(credential(env, sp), env.subscription_id, env.resource_group, env.workspace)


@pytest.fixture(scope="module")
def ml(env):
    if "ml" not in STATE:
        STATE["ml"] = client(env, env.sp)
    return STATE["ml"]


@pytest.fixture(scope="module")
def request_file(env):
    path = os.path.join(env.work, "sdk2-request.json")
    with open(path, "w") as f:
        json.dump({"data": [ROW]}, f)
    return path


def prediction(answer):
    """The ONNX runtime's answer, `{"result": [[y]]}`, as a number."""
    return json.loads(answer)["result"][0][0]


def score(uri, key):
    return requests.post(uri, json={"data": [ROW]}, timeout=30,
                         headers={"Authorization": f"Bearer {key}"})


# --- 1-3: the client, from the cloud metadata; workspaces ------------------------------------

def test_01_mlclient_from_the_cloud_metadata(env, ml):
    from azure.ai.ml._azure_environments import _get_base_url_from_metadata
    assert os.environ["AZUREML_CURRENT_CLOUD"] == "mlgate", "the SDK chose the cloud by its URL"
    assert _get_base_url_from_metadata() == env.url
    assert ml.subscription_id == env.subscription_id


def test_02_workspaces_get(env, ml):
    ws = ml.workspaces.get(env.workspace)
    assert ws.name == env.workspace and ws.resource_group == env.resource_group
    assert ws.discovery_url.startswith(env.url)


def test_03_workspaces_list(env, ml):
    assert env.workspace in [w.name for w in ml.workspaces.list()]


# --- 4-13: the three services as online endpoints --------------------------------------------

def test_04_online_endpoints_list(env, ml):
    eps = {e.name: e for e in ml.online_endpoints.list()}
    assert {KEY, TOKEN, AAD} <= set(eps)
    assert (eps[KEY].auth_mode, eps[TOKEN].auth_mode, eps[AAD].auth_mode) == \
        ("key", "aml_token", "aad_token")


def test_05_online_endpoints_get(env, ml):
    e = ml.online_endpoints.get(KEY)
    assert e.scoring_uri == f"{env.url}/api/v1/service/{KEY}/score"
    assert e.provisioning_state == "Succeeded" and e.traffic == {"default": 100}
    assert [d.name for d in ml.online_deployments.list(KEY)] == ["default"]


def test_06_get_keys_for_key_auth(ml):
    keys = ml.online_endpoints.get_keys(KEY)
    assert keys.primary_key and keys.secondary_key and keys.primary_key != keys.secondary_key
    STATE["old_key"] = keys.primary_key
    STATE.setdefault("seen", []).extend([keys.primary_key, keys.secondary_key])


def test_07_get_keys_for_aml_token_is_a_token_with_its_expiry(ml):
    t = ml.online_endpoints.get_keys(TOKEN)
    assert t.access_token and t.token_type == "Bearer"
    now = time.time()
    assert now < t.refresh_after_time_utc < t.expiry_time_utc <= now + 2 * 3600
    STATE.setdefault("seen", []).append(t.access_token)


def test_08_get_keys_for_aad_token_is_an_identity_token(ml):
    t = ml.online_endpoints.get_keys(AAD)
    assert t.access_token and t.expiry_time_utc > time.time()
    STATE.setdefault("seen", []).append(t.access_token)


def test_09_begin_regenerate_keys(ml):
    ml.online_endpoints.begin_regenerate_keys(KEY, key_type="primary").result()
    new = ml.online_endpoints.get_keys(KEY).primary_key
    assert new != STATE["old_key"]
    STATE["new_key"] = new
    STATE.setdefault("seen", []).append(new)


def test_10_the_old_key_is_refused_at_scoring(env, ml):
    uri = ml.online_endpoints.get(KEY).scoring_uri
    assert score(uri, STATE["old_key"]).status_code == 401
    assert score(uri, STATE["new_key"]).status_code == 200


@pytest.mark.parametrize("name", [KEY, TOKEN, AAD], ids=["key", "aml_token", "aad_token"])
def test_11_13_invoke(ml, request_file, name):
    assert prediction(ml.online_endpoints.invoke(name, request_file=request_file)) == \
        pytest.approx(EXPECTED, rel=1e-5)


# --- 14-15: models -----------------------------------------------------------------------------

def test_14_models_list(ml):
    models = {m.name: m for m in ml.models.list()}
    assert MODEL in models and models[MODEL].latest_version == "1"


def test_15_models_get(env, ml):
    m = ml.models.get(MODEL, version="1")
    assert (m.name, m.version, m.type) == (MODEL, "1", "custom_model")
    assert m.id.endswith(f"/workspaces/{env.workspace}/models/{MODEL}/versions/1")
    assert m.path.startswith(env.url)
    assert [v.version for v in ml.models.list(name=MODEL)] == ["1"]


# --- 16-20: an endpoint and deployments made with the SDK's own objects ------------------------

def test_16_create_an_endpoint(env, ml):
    e = ml.online_endpoints.begin_create_or_update(
        ManagedOnlineEndpoint(name="sdk-onnx", auth_mode="key", description="made by the SDK")
    ).result()
    assert (e.name, e.auth_mode, e.provisioning_state) == ("sdk-onnx", "key", "Succeeded")
    assert ml.online_endpoints.get("sdk-onnx").description == "made by the SDK"


def test_17_deploy_a_registered_onnx_model(ml):
    d = ManagedOnlineDeployment(name="blue", endpoint_name="sdk-onnx",
                                model=ml.models.get(MODEL, version="1"),
                                instance_type="Standard_DS3_v2", instance_count=1)
    out = ml.online_deployments.begin_create_or_update(d).result()
    assert (out.name, out.provisioning_state) == ("blue", "Succeeded")
    e = ml.online_endpoints.get("sdk-onnx")
    e.traffic = {"blue": 100}
    assert ml.online_endpoints.begin_create_or_update(e).result().traffic == {"blue": 100}


def test_18_the_onnx_deployment_scores(ml, request_file):
    answer = ml.online_endpoints.invoke("sdk-onnx", request_file=request_file,
                                        deployment_name="blue")
    assert prediction(answer) == pytest.approx(EXPECTED, rel=1e-5)


def test_19_deploy_a_score_py_with_its_source_folder(env, ml):
    src = os.path.join(env.work, "sdk2-src")
    os.makedirs(src, exist_ok=True)
    with open(os.path.join(src, "score.py"), "w") as f:
        f.write(
            "import json, os\n"
            "from scaling import factor\n\n"
            "def init():\n"
            "    global k\n"
            "    k = factor()\n"
            "    assert os.environ['AZUREML_MODEL_DIR']\n\n"
            "def run(raw_data):\n"
            "    rows = json.loads(raw_data)['data']\n"
            "    return {'scaled': [sum(r) * k for r in rows], 'greeting': os.environ['GREETING']}\n"
        )
    with open(os.path.join(src, "scaling.py"), "w") as f:
        f.write("def factor():\n    return 3.0\n")
    ml.online_endpoints.begin_create_or_update(
        ManagedOnlineEndpoint(name="sdk-code", auth_mode="aml_token")).result()
    d = ManagedOnlineDeployment(
        name="green", endpoint_name="sdk-code", model=ml.models.get(MODEL, version="1"),
        code_configuration=CodeConfiguration(code=src, scoring_script="score.py"),
        environment_variables={"GREETING": "hello"},
        instance_type="Standard_DS3_v2", instance_count=1)
    out = ml.online_deployments.begin_create_or_update(d).result()
    assert out.provisioning_state == "Succeeded"
    assert out.code_configuration.scoring_script == "score.py"
    logs = ml.online_deployments.get_logs("green", "sdk-code", lines=20)
    assert "Laid out 2 source file(s)" in logs


def test_20_the_score_py_deployment_scores(ml, request_file):
    answer = json.loads(ml.online_endpoints.invoke("sdk-code", request_file=request_file))
    assert answer == {"scaled": [sum(ROW) * 3.0], "greeting": "hello"}


# --- beyond the list: least privilege, clean-up, and where the SDK went --------------------------

def test_21_a_reader_gets_a_token_but_not_keys(env):
    reader = client(env, env.reader)
    t = reader.online_endpoints.get_keys(TOKEN)
    assert t.access_token
    STATE.setdefault("seen", []).append(t.access_token)
    with pytest.raises(HttpResponseError) as e:
        reader.online_endpoints.get_keys(KEY)
    assert e.value.status_code == 403
    with pytest.raises(HttpResponseError) as e:
        reader.online_endpoints.begin_create_or_update(
            ManagedOnlineEndpoint(name="reader-made", auth_mode="key")).result()
    assert e.value.status_code == 403


def test_22_delete_the_endpoints(ml):
    for name in ("sdk-onnx", "sdk-code"):
        ml.online_endpoints.begin_delete(name).result()
    names = [e.name for e in ml.online_endpoints.list()]
    assert "sdk-onnx" not in names and "sdk-code" not in names


def test_23_the_sdk_talked_only_to_mlgate(env):
    remember(env, *STATE.get("seen", []))
    with open(LOG) as f:
        assert_only_mlgate(f.read(), env, "azure-ai-ml")

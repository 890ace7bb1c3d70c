"""The web console at /console in a real browser: headless Chromium (Selenium, chromedriver)
signs in through mlgate's own authorize page and completes each flow of issue 14; every console
page is checked with axe-core (no serious or critical violation) and saved as PNGs at desktop
(1280 px) and phone (390 px) widths under MLGATE_SCREENSHOTS/console/.

compat.sh exports MLGATE_ADMIN_USER / MLGATE_ADMIN_PASSWORD (the bootstrap administrator, the
console's main user), MLGATE_USER_NAME / MLGATE_USER_PASSWORD (a person with no role, made Reader
here), MLGATE_BIN (the CLI, signed in as the administrator through MLGATE_CONFIG_DIR) and the
screenshot folder. Keys, tokens and secrets the tests see go to MLGATE_SEEN_SECRETS, which
compat.sh then looks for in the server's log."""

import base64
import html
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import requests

from test_interactive import browser, shot, submit, text  # noqa: F401  (the sign-in tests' harness)

STATE = {}
RG, WS, SVC, SP = "console-rg", "console-ws", "console-svc", "console-sp"
AXE = Path(__file__).resolve().parents[3] / ".deps/node/node_modules/axe-core/axe.min.js"


@pytest.fixture(scope="module")
def people():
    for k in ("MLGATE_ADMIN_USER", "MLGATE_ADMIN_PASSWORD", "MLGATE_USER_NAME", "MLGATE_USER_PASSWORD",
              "MLGATE_BIN", "MLGATE_SCREENSHOTS"):
        if not os.environ.get(k):
            pytest.fail("compat.sh did not export " + k)
    assert AXE.is_file(), f"{AXE} is missing: run scripts/setup-test-deps.sh"
    (Path(os.environ["MLGATE_SCREENSHOTS"]) / "console").mkdir(parents=True, exist_ok=True)
    return {
        "admin": (os.environ["MLGATE_ADMIN_USER"], os.environ["MLGATE_ADMIN_PASSWORD"]),
        "reader": (os.environ["MLGATE_USER_NAME"], os.environ["MLGATE_USER_PASSWORD"]),
    }


def seen(secret):
    """Records a credential the test saw; compat.sh fails if any appears in a log."""
    path = os.environ.get("MLGATE_SEEN_SECRETS")
    if path:
        with open(path, "a") as f:
            f.write(secret + "\n")


def page_check(driver, name):
    """axe-core on the page as it is, then screenshots at desktop and phone widths."""
    driver.execute_script(AXE.read_text())
    violations = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations), e => done(String(e)));")
    assert isinstance(violations, list), violations
    bad = [(v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]][:3])
           for v in violations if v["impact"] in ("serious", "critical")]
    assert not bad, f"{name}: accessibility violations {bad}"
    folder = Path(os.environ["MLGATE_SCREENSHOTS"]) / "console"
    for label, width in (("desktop", 1280), ("phone", 390)):
        driver.set_window_size(width, 900)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, min(max(height, 600) + 140, 8000))
        driver.save_screenshot(str(folder / f"{name}-{label}.png"))
    driver.set_window_size(1280, 900)
    STATE.setdefault("pages", set()).add(name)


def sign_in(driver, cfg, user, password):
    driver.get(cfg.url + "/console")
    assert "/oauth2/v2.0/authorize" in driver.current_url, driver.current_url
    assert "mlgate console" in text(driver), text(driver)
    driver.find_element("id", "username").send_keys(user)
    driver.find_element("id", "password").send_keys(password)
    submit(driver, "signin")
    assert driver.current_url == cfg.url + "/console", driver.current_url
    assert user in text(driver)


def fill(driver, element_id, value):
    el = driver.find_element("id", element_id)
    el.clear()
    el.send_keys(value)


def choose(driver, element_id, value):
    from selenium.webdriver.support.ui import Select
    Select(driver.find_element("id", element_id)).select_by_value(value)


def by_id(driver, element_id):
    return driver.find_element("id", element_id).text


def http(driver, cfg):
    """A requests session holding the browser's cookies (to post what a page would not)."""
    s = requests.Session()
    s.verify = cfg.ca
    for c in driver.get_cookies():
        s.cookies.set(c["name"], c["value"])
    return s


def csrf_of(driver):
    return driver.find_element("css selector", "input[name=csrf]").get_attribute("value")


def post_from_page(driver, action, fields):
    """Submits a form the page does not have, from the page (same origin, as a person could)."""
    driver.execute_script(
        "const f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];"
        "for (const [k, v] of Object.entries(arguments[1])) {"
        "  const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i); }"
        "document.body.appendChild(f); window.__mlgateOldPage = true; f.submit();", action, fields)
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(driver, 30, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script(
            "return window.__mlgateOldPage === undefined && document.readyState === 'complete';"))


def score(cfg, uri, credential=None):
    headers = {"Authorization": "Bearer " + credential} if credential else {}
    return requests.post(uri, json={"data": [[1.0, 2.0]]}, headers=headers, verify=cfg.ca, timeout=30)


def cli(*args, check=True):
    p = subprocess.run([os.environ["MLGATE_BIN"], *args], capture_output=True, text=True, timeout=300)
    if check:
        assert p.returncode == 0, (args, p.stderr)
    return p


def deploy_with_the_cli(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "coef.json").write_text('{"coef": [1.0, 2.0], "bias": 0.5}')
    (tmp_path / "score.py").write_text(
        "import json, os\n\ndef init():\n    global model\n"
        "    with open(os.path.join(os.environ['AZUREML_MODEL_DIR'], 'coef.json')) as f:\n"
        "        model = json.load(f)\n\ndef run(raw_data):\n    data = json.loads(raw_data)['data']\n"
        "    return [sum(c * x for c, x in zip(model['coef'], row)) + model['bias'] for row in data]\n")
    (tmp_path / "ic.json").write_text('{"runtime": "python", "entryScript": "score.py"}')
    (tmp_path / "dc.json").write_text('{"computeType": "cluster", "cpu_cores": 1}')
    cli("ml", "model", "register", "-n", "coef", "-p", str(model), "-w", WS, "-g", RG)
    cli("ml", "model", "deploy", "-n", SVC, "-m", "coef:1", "--ic", str(tmp_path / "ic.json"),
        "--dc", str(tmp_path / "dc.json"), "-w", WS, "-g", RG)


def test_administrator_completes_every_console_flow(cfg, people, browser, tmp_path):
    user, password = people["admin"]
    sign_in(browser, cfg, user, password)
    page_check(browser, "home-empty")
    # Keyboard first: Tab reaches "Skip to content", then the navigation.
    from selenium.webdriver.common.keys import Keys
    browser.find_element("tag name", "body").send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Skip to content"

    # A resource group, then a workspace in it.
    fill(browser, "group_name", RG)
    submit(browser, "create-group")
    assert f"Resource group '{RG}' is ready." in text(browser), text(browser)
    fill(browser, "ws_name", WS)
    group = browser.find_element("css selector", f"#ws_group option[value$='|{RG}']").get_attribute("value")
    choose(browser, "ws_group", group)
    submit(browser, "create-workspace")
    assert f"Workspace {WS}" in text(browser), text(browser)
    STATE["ws_url"] = browser.current_url
    assert "/console/ws/" in STATE["ws_url"]
    browser.get(cfg.url + "/console")
    assert WS in text(browser)
    page_check(browser, "home")

    # A service principal and its secret, shown once with the --sdk-auth JSON.
    browser.get(cfg.url + "/console/directory")
    fill(browser, "sp_name", SP)
    submit(browser, "create-sp")
    assert "Copy the secret now" in text(browser), text(browser)
    app_id, secret = by_id(browser, "new-app-id"), by_id(browser, "new-secret-value")
    seen(secret)
    href = browser.find_element("id", "sdk-auth").get_attribute("href")
    sdk = json.loads(base64.b64decode(href.split(",", 1)[1]))
    assert sdk["clientId"] == app_id and sdk["clientSecret"] == secret, sdk
    assert sdk["activeDirectoryEndpointUrl"] == cfg.url and sdk["subscriptionId"], sdk
    page_check(browser, "directory-new-secret")
    token = requests.post(f"{cfg.url}/{sdk['tenantId']}/oauth2/v2.0/token", verify=cfg.ca, timeout=30, data={
        "grant_type": "client_credentials", "client_id": app_id, "client_secret": secret,
        "scope": "https://management.azure.com/.default"})
    assert token.status_code == 200, token.text
    STATE["sp_app_id"] = app_id

    # A second secret, listed by its hint, then deleted: it stops working.
    mine = browser.find_element("xpath", f"//div[@class='sp'][h3[text()='{SP}']]")
    sp_object = mine.get_attribute("id").removeprefix("sp-")
    submit(browser, f"add-secret-{sp_object}")
    second = by_id(browser, "new-secret-value")
    seen(second)
    assert f"{second[:3]}…" in text(browser)
    rows = browser.find_elements("css selector", f"#sp-{sp_object} button[id^=delete-secret-]")
    assert len(rows) == 2, len(rows)
    secret_ids = [b.get_attribute("id").removeprefix("delete-secret-") for b in rows]
    page_check(browser, "directory")
    second_id = next(i for i in secret_ids
                     if f"{second[:3]}…" in browser.find_element("id", f"delete-secret-{i}").find_element(
                         "xpath", "ancestor::tr").text)
    submit(browser, f"delete-secret-{second_id}")
    assert "The secret was deleted" in text(browser), text(browser)
    gone = requests.post(f"{cfg.url}/{sdk['tenantId']}/oauth2/v2.0/token", verify=cfg.ca, timeout=30, data={
        "grant_type": "client_credentials", "client_id": app_id, "client_secret": second,
        "scope": "https://management.azure.com/.default"})
    assert gone.status_code == 401, gone.text

    # Reader on the workspace for the service principal and for the person of the Reader test.
    browser.get(STATE["ws_url"])
    for assignee in (app_id, people["reader"][0]):
        choose(browser, "role", "Reader")
        fill(browser, "assignee", assignee)
        submit(browser, "add-assignment")
        assert "'Reader' assigned to" in text(browser), text(browser)
    access = browser.find_element("id", "access").find_element("xpath", "..").text
    assert f"{SP} ({app_id})" in access and people["reader"][0] in access, access
    assert "This workspace" in access and "Inherited from" in access, access

    # A model deployed through the CLI shows up in the workspace.
    deploy_with_the_cli(tmp_path)
    browser.get(STATE["ws_url"])
    assert SVC in text(browser) and "coef" in text(browser)
    page_check(browser, "workspace")
    link = browser.find_element("css selector", "a[href*='/models/coef/1/download']").get_attribute("href")
    got = http(browser, cfg).get(link)
    assert got.status_code == 200 and got.json() == {"coef": [1.0, 2.0], "bias": 0.5}, got.text
    config = http(browser, cfg).get(STATE["ws_url"] + "/config.json")
    assert config.status_code == 200 and "attachment" in config.headers["content-disposition"]
    assert config.json()["workspace_name"] == WS and config.json()["server"] == cfg.url

    # The service: reveal its keys, which score; regenerate the primary one after confirming.
    browser.get(f"{STATE['ws_url']}/services/{SVC}")
    STATE["svc_url"] = browser.current_url
    assert by_id(browser, "state") == "Healthy", text(browser)
    uri = by_id(browser, "scoring-uri")
    assert uri == f"{cfg.url}/api/v1/service/{SVC}/score"
    assert uri in by_id(browser, "consume-python") and "requests.post" in by_id(browser, "consume-python")
    assert uri in by_id(browser, "consume-curl") and uri in by_id(browser, "consume-rust")
    assert "••••" in by_id(browser, "primary-key")
    page_check(browser, "service")
    submit(browser, "reveal-keys")
    old = by_id(browser, "primary-key")
    seen(old)
    assert len(old) > 30 and "•" not in old
    assert score(cfg, uri, old).json() == [5.5]
    page_check(browser, "service-keys-revealed")
    submit(browser, "regenerate-primary")
    assert "Regenerate the primary key?" in text(browser), text(browser)
    page_check(browser, "service-regenerate-confirm")
    submit(browser, "confirm-regenerate")
    assert "regenerated" in text(browser), text(browser)
    assert browser.current_url == STATE["svc_url"] + "?done=primary", "reloading must not regenerate again"
    browser.refresh()
    assert "••••" in by_id(browser, "primary-key")
    submit(browser, "reveal-keys")
    new = by_id(browser, "primary-key")
    seen(new)
    assert new != old
    assert score(cfg, uri, old).status_code == 401
    assert score(cfg, uri, new).json() == [5.5]

    # Token auth on the cluster service; a token from the console scores.
    choose(browser, "mode", "aml_token")
    submit(browser, "set-auth")
    assert "Authentication is now 'token'" in text(browser), text(browser)
    assert score(cfg, uri, new).status_code == 401
    submit(browser, "get-token")
    token = by_id(browser, "service-token")
    seen(token)
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", by_id(browser, "refresh-by"))
    assert score(cfg, uri, token).json() == [5.5]
    page_check(browser, "service-token")

    # Test-score from the console.
    fill(browser, "test-body", '{"data": [[1.0, 2.0], [0.0, 1.0]]}')
    submit(browser, "run-test")
    assert json.loads(by_id(browser, "test-result")) == [5.5, 2.5], text(browser)
    page_check(browser, "service-test")

    # Roles: create one from Azure's JSON; check access explains the decision.
    browser.get(cfg.url + "/console/roles")
    assert "Built-in" in text(browser) and "Reader" in text(browser)
    sub = sdk["subscriptionId"]
    fill(browser, "definition", json.dumps({
        "Name": "Console Model Reader", "IsCustom": True, "Description": "Reads models.",
        "Actions": ["Microsoft.MachineLearningServices/workspaces/models/read"], "NotActions": [],
        "AssignableScopes": [f"/subscriptions/{sub}"]}))
    submit(browser, "create-role")
    assert "Role 'Console Model Reader' created." in text(browser), text(browser)
    scope = f"/subscriptions/{sub}/resourceGroups/{RG}/providers/Microsoft.MachineLearningServices/workspaces/{WS}"
    fill(browser, "assignee", app_id)
    fill(browser, "action", "Microsoft.MachineLearningServices/workspaces/read")
    fill(browser, "scope", scope)
    submit(browser, "check-access")
    assert "Allowed:" in text(browser) and "Granted by Reader" in text(browser), text(browser)
    page_check(browser, "roles-check")
    fill(browser, "action", "Microsoft.MachineLearningServices/workspaces/services/listKeys/action")
    submit(browser, "check-access")
    assert "Denied:" in text(browser) and "'Reader' does not grant it" in text(browser), text(browser)

    # The activity and sign-in logs, filtered to failed sign-ins.
    browser.get(cfg.url + "/console/logs?failures=1")
    assert "Activity log" in text(browser) and "Sign-in log" in text(browser), text(browser)
    page_check(browser, "logs")

    # A forged post (no token, or another's) does nothing.
    s = http(browser, cfg)
    for data in ({"slot": "Primary", "confirm": "yes"}, {"slot": "Primary", "confirm": "yes", "csrf": "forged"}):
        r = s.post(STATE["svc_url"] + "/regenerate", data=data, allow_redirects=False)
        assert r.status_code == 403 and "nothing was done" in r.text, (r.status_code, r.text[:300])
    browser.get(STATE["svc_url"])
    submit(browser, "reveal-keys")
    assert by_id(browser, "primary-key") == new, "a forged post changed the key"
    post_from_page(browser, STATE["svc_url"] + "/regenerate", {"slot": "Primary", "confirm": "yes", "csrf": "forged"})
    assert "Request refused" in text(browser), text(browser)
    page_check(browser, "forged-refused")

    # Sign out: the session ends (the old cookie opens nothing) and sign-in is asked again.
    cookies = http(browser, cfg)
    browser.get(cfg.url + "/console")
    submit(browser, "signout")
    assert "You're signed out" in text(browser), text(browser)
    page_check(browser, "signed-out")
    r = cookies.get(cfg.url + "/console", allow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/signin", r.status_code
    browser.get(cfg.url + "/console")
    assert "/oauth2/v2.0/authorize" in browser.current_url
    page_check(browser, "sign-in")


def test_reader_sees_the_service_but_no_keys_and_cannot_regenerate(cfg, people, browser):
    assert "svc_url" in STATE, "the administrator's flow did not get to the service"
    user, password = people["reader"]
    sign_in(browser, cfg, user, password)
    assert WS in text(browser), text(browser)
    page_check(browser, "reader-home")
    browser.get(STATE["ws_url"])
    assert SVC in text(browser)
    assert not browser.find_elements("id", "add-assignment"), "a Reader may not assign roles"
    assert not browser.find_elements("css selector", "button[id^=remove-]")
    page_check(browser, "reader-workspace")
    browser.get(STATE["svc_url"])
    assert by_id(browser, "state") == "Healthy"
    assert browser.find_elements("id", "no-keys")
    for absent in ("reveal-keys", "regenerate-primary", "regenerate-secondary", "primary-key", "set-auth"):
        assert not browser.find_elements("id", absent), absent
    # Reader may get a service token (services/read), as Azure ML advises.
    submit(browser, "get-token")
    token = by_id(browser, "service-token")
    seen(token)
    assert score(cfg, f"{cfg.url}/api/v1/service/{SVC}/score", token).status_code == 200
    page_check(browser, "reader-service")

    # Posting what the page does not offer is refused by the server, with Azure's words.
    s = http(browser, cfg)
    for action in ("regenerate", "keys"):
        r = s.post(f"{STATE['svc_url']}/{action}", data={"slot": "Primary", "confirm": "yes", "csrf": csrf_of(browser)},
                   allow_redirects=False)
        assert r.status_code == 403, (action, r.status_code)
        assert "does not have authorization to perform action" in html.unescape(r.text), r.text[:500]
    browser.get(STATE["svc_url"])
    post_from_page(browser, STATE["svc_url"] + "/regenerate",
                   {"slot": "Primary", "confirm": "yes", "csrf": csrf_of(browser)})
    assert "does not have authorization to perform action" in text(browser), text(browser)
    page_check(browser, "reader-refused")


def test_every_console_page_was_checked(people):
    expected = {"home-empty", "home", "directory", "directory-new-secret", "workspace", "service",
                "service-keys-revealed", "service-regenerate-confirm", "service-token", "service-test",
                "roles-check", "logs", "forged-refused", "signed-out", "sign-in", "reader-home", "reader-workspace", "reader-service",
                "reader-refused"}
    assert expected <= STATE.get("pages", set()), expected - STATE.get("pages", set())

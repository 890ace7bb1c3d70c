"""Interactive sign-in in a real browser: headless Chromium (Debian's, driven by Selenium and
chromedriver) goes through /devicelogin and the authorize page while the mlgate CLI, MSAL or
ADAL waits. Every page passed through is saved as a PNG under MLGATE_SCREENSHOTS for review.

compat.sh exports MLGATE_BIN (the mlgate binary), MLGATE_USER_NAME / MLGATE_USER_PASSWORD (a
user it created) and MLGATE_SCREENSHOTS."""

import json
import os
import re
import subprocess
import time
from pathlib import Path

import adal
import msal
import pytest

CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
ARM = "https://management.azure.com/"


@pytest.fixture(scope="module")
def person():
    for k in ("MLGATE_BIN", "MLGATE_USER_NAME", "MLGATE_USER_PASSWORD", "MLGATE_SCREENSHOTS"):
        if not os.environ.get(k):
            pytest.fail("compat.sh did not export " + k)
    Path(os.environ["MLGATE_SCREENSHOTS"]).mkdir(parents=True, exist_ok=True)
    return os.environ["MLGATE_USER_NAME"], os.environ["MLGATE_USER_PASSWORD"]


@pytest.fixture
def browser(tmp_path, cfg):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # The server's CA is trusted the documented way, not by ignoring certificate errors:
    # `mlgate tls trust --no-system` writes it into $HOME/.pki/nssdb, the NSS database Chromium
    # reads on Linux; the browser runs with that HOME.
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home))
    trust = subprocess.run([os.environ["MLGATE_BIN"], "tls", "trust", "--no-system",
                            "--ca-file", cfg.ca], capture_output=True, text=True, env=env, timeout=60)
    assert trust.returncode == 0, trust.stderr
    assert "installed the CA for Chromium" in trust.stdout, trust.stdout
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--window-size=900,820",
              f"--user-data-dir={tmp_path / 'chromium'}"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver", env=env), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def shot(driver, name):
    driver.save_screenshot(str(Path(os.environ["MLGATE_SCREENSHOTS"]) / f"{name}.png"))


def text(driver):
    return driver.find_element("tag name", "body").text


def submit(driver, element_id):
    """Clicks a button that submits a form and waits until the next page has loaded.

    Reading the page straight after `click()` races the navigation: it can see the old
    page, or an element that goes stale while being read. A navigation replaces the
    window's global object, so a marker set on it before the click is gone once the
    next page is there. Chromium's errors while the document is being swapped are
    retried.
    """
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("window.__mlgateOldPage = true;")
    driver.find_element("id", element_id).click()

    def next_page_loaded(d):
        return d.execute_script(
            "return window.__mlgateOldPage === undefined && document.readyState === 'complete';")

    WebDriverWait(driver, 30, ignored_exceptions=(WebDriverException,)).until(next_page_loaded)


def approve_in_browser(driver, cfg, code, user, password, label, decision="approve"):
    driver.get(cfg.url + "/devicelogin")
    shot(driver, f"{label}-1-enter-code")
    driver.find_element("id", "code").send_keys(code)
    submit(driver, "next")
    assert "Sign in" in text(driver), text(driver)
    assert "Microsoft Azure CLI" in text(driver)
    assert cfg.tenant_domain in text(driver)
    shot(driver, f"{label}-2-sign-in")
    driver.find_element("id", "username").send_keys(user)
    driver.find_element("id", "password").send_keys(password)
    submit(driver, "signin")
    assert "Are you trying to sign in?" in text(driver), text(driver)
    shot(driver, f"{label}-3-consent")
    submit(driver, decision)
    shot(driver, f"{label}-4-done")
    return text(driver)


def cli_env(tmp_path):
    return dict(os.environ, MLGATE_CONFIG_DIR=str(tmp_path / "cli"))


def test_cli_device_code_login_completes_through_chromium(cfg, person, browser, tmp_path):
    user, password = person
    env = cli_env(tmp_path)
    p = subprocess.Popen([os.environ["MLGATE_BIN"], "--server", cfg.url, "--ca-file", cfg.ca,
                          "login", "--use-device-code"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        message = p.stderr.readline()
        m = re.search(r"open the page (\S+) and enter the code (\S+) to authenticate", message)
        assert m, message
        assert m.group(1) == cfg.url + "/devicelogin"
        done = approve_in_browser(browser, cfg, m.group(2), user, password, "cli-device-code")
        assert "You're signed in" in done, done
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 0, err
    assert json.loads(out)[0]["user"]["name"] == user
    show = subprocess.run([os.environ["MLGATE_BIN"], "account", "show"], capture_output=True,
                          text=True, env=env, timeout=30)
    assert json.loads(show.stdout)["user"]["name"] == user


def test_cli_browser_login_with_pkce_completes_through_chromium(cfg, person, browser, tmp_path):
    user, password = person
    env = cli_env(tmp_path)
    url_file = tmp_path / "opened-url"
    opener = tmp_path / "browser.sh"
    opener.write_text(f"#!/bin/sh\nprintf '%s' \"$1\" > '{url_file}'\n")
    opener.chmod(0o755)
    env["BROWSER"] = str(opener)
    p = subprocess.Popen([os.environ["MLGATE_BIN"], "--server", cfg.url, "--ca-file", cfg.ca, "login"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.time() + 20
        while not (url_file.exists() and url_file.read_text()) and time.time() < deadline:
            time.sleep(0.1)
        url = url_file.read_text()
        assert "code_challenge_method=S256" in url and "redirect_uri=http%3A%2F%2Flocalhost%3A" in url, url
        browser.get(url)
        assert "Sign in" in text(browser)
        shot(browser, "cli-browser-1-sign-in")
        browser.find_element("id", "username").send_keys(user)
        browser.find_element("id", "password").send_keys("not-the-password")
        submit(browser, "signin")
        assert "incorrect" in text(browser), text(browser)
        shot(browser, "cli-browser-2-wrong-password")
        browser.find_element("id", "password").send_keys(password)
        submit(browser, "signin")
        deadline = time.time() + 20
        while not browser.current_url.startswith("http://localhost:") and time.time() < deadline:
            time.sleep(0.1)
        assert "You have signed in" in text(browser), text(browser)
        shot(browser, "cli-browser-3-back-at-the-cli")
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 0, err
    assert json.loads(out)[0]["user"]["name"] == user


def test_msal_device_flow_approved_in_chromium(cfg, person, browser):
    user, password = person
    app = msal.PublicClientApplication(CLI_CLIENT_ID, authority=f"{cfg.url}/{cfg.tenant_id}",
                                       instance_discovery=False)
    flow = app.initiate_device_flow(scopes=[cfg.scope])
    assert "user_code" in flow, flow
    assert flow["verification_uri"] == cfg.url + "/devicelogin"
    approve_in_browser(browser, cfg, flow["user_code"], user, password, "msal-device")
    result = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    assert result["id_token_claims"]["preferred_username"] == user
    assert cfg.me(result["access_token"]).json()["userPrincipalName"] == user
    # MSAL caches the account and renews silently with the refresh token.
    accounts = app.get_accounts()
    assert accounts and accounts[0]["username"] == user
    silent = app.acquire_token_silent([cfg.scope], account=accounts[0], force_refresh=True)
    assert silent and "access_token" in silent, silent


def test_adal_device_flow_approved_in_chromium(cfg, person, browser):
    user, password = person
    ctx = adal.AuthenticationContext(f"{cfg.url}/{cfg.tenant_id}", validate_authority=False)
    code = ctx.acquire_user_code(ARM, CLI_CLIENT_ID)
    assert code["verification_url"] == cfg.url + "/devicelogin"
    approve_in_browser(browser, cfg, code["user_code"], user, password, "adal-device")
    token = ctx.acquire_token_with_device_code(ARM, code, CLI_CLIENT_ID)
    assert token["accessToken"]
    assert token["userId"] == user
    assert cfg.me(token["accessToken"]).status_code == 200


def test_denied_consent_reaches_msal_as_access_denied(cfg, person, browser):
    user, password = person
    app = msal.PublicClientApplication(CLI_CLIENT_ID, authority=f"{cfg.url}/{cfg.tenant_id}",
                                       instance_discovery=False)
    flow = app.initiate_device_flow(scopes=[cfg.scope])
    done = approve_in_browser(browser, cfg, flow["user_code"], user, password, "denied", decision="deny")
    assert "denied" in done
    result = app.acquire_token_by_device_flow(flow)
    assert result.get("error") == "access_denied", result


def test_wrong_and_used_codes_get_plain_messages(cfg, person, browser):
    browser.get(cfg.url + "/devicelogin")
    browser.find_element("id", "code").send_keys("BBBB-CCCC")
    submit(browser, "next")
    assert "wasn't recognised" in text(browser), text(browser)
    shot(browser, "error-unknown-code")


def test_landing_page_and_devicelogin_load_with_the_installed_ca(cfg, person, browser):
    """No certificate error: the CA was installed with `mlgate tls trust`, nothing ignored."""
    browser.get(cfg.url + "/")
    assert browser.title == "Welcome · mlgate", (browser.title, text(browser))
    assert "not private" not in text(browser)
    assert "Enter a sign-in code" in text(browser)
    shot(browser, "landing")
    browser.find_element("id", "devicelogin").click()
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(browser, 30).until(lambda d: d.current_url.endswith("/devicelogin"))
    assert browser.find_element("id", "code")
    shot(browser, "devicelogin-from-landing")

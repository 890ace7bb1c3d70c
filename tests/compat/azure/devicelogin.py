"""Approves a device code through mlgate's /devicelogin pages with a plain HTTP client, the way a
person's browser does: GET the page, then POST each form (code, sign-in, consent) with the
hidden fields (CSRF token, signed state) the previous page carried."""

from html.parser import HTMLParser
from urllib.parse import urljoin

import requests


class _Forms(HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "fields": {}})
        elif tag == "input" and self.forms and a.get("type") == "hidden" and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value") or ""


def _form(html):
    p = _Forms()
    p.feed(html)
    if not p.forms:
        raise AssertionError("no form on the page:\n" + html[:2000])
    return p.forms[0]


def approve(url, ca, code, user, password, decision="approve"):
    """Returns the text of the last page."""
    s = requests.Session()
    # Per request: requests lets REQUESTS_CA_BUNDLE override a session's `verify`.
    r = s.get(url + "/devicelogin", timeout=30, verify=ca)
    r.raise_for_status()
    f = _form(r.text)
    r = s.post(urljoin(url + "/", f["action"]), data={**f["fields"], "code": code}, timeout=30, verify=ca)
    r.raise_for_status()
    assert 'name="password"' in r.text, r.text[:2000]
    f = _form(r.text)
    r = s.post(urljoin(url + "/", f["action"]),
               data={**f["fields"], "username": user, "password": password}, timeout=60,
               verify=ca)
    r.raise_for_status()
    assert "Are you trying to sign in?" in r.text, r.text[:2000]
    f = _form(r.text)
    r = s.post(urljoin(url + "/", f["action"]), data={**f["fields"], "decision": decision}, timeout=30,
               verify=ca)
    r.raise_for_status()
    return r.text

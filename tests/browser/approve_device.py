#!/usr/bin/env python3
"""The person on another device, for device flow tests against the test
authorization server (tests/peers/oidc): open the verification URI, type
the user code into oidc-provider's form, confirm it, and sign in as the
test user at the login interaction (or deny with --deny). Standard library
only; a browser would do the same requests (cookies kept, redirects
followed).

    approve_device.py VERIFICATION_URI USER_CODE [--deny]

Exits 0 when oidc-provider's last page says the sign-in succeeded (or, with
--deny, that it was aborted); prints what went wrong otherwise.
"""

import argparse
import html.parser
import http.cookiejar
import sys
import urllib.parse
import urllib.request


class Forms(html.parser.HTMLParser):
    """The forms of a page: action, and hidden fields."""

    def __init__(self):
        super().__init__()
        self.forms = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"id": a.get("id"), "action": a.get("action", ""), "fields": {}})
        elif tag == "input" and self.forms and a.get("type") == "hidden" and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value") or ""


def forms_of(body):
    p = Forms()
    p.feed(body)
    return p.forms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("verification_uri")
    ap.add_argument("user_code")
    ap.add_argument("--deny", action="store_true")
    opts = ap.parse_args()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def go(url, form=None):
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        with opener.open(url, data=data, timeout=20) as r:
            return r.geturl(), r.read().decode()

    def submit(url, body, pick, extra=()):
        form = next((f for f in forms_of(body) if pick(f)), None)
        if form is None:
            sys.exit(f"no such form on {url}:\n{body}")
        fields = dict(form["fields"], **dict(extra))
        return go(urllib.parse.urljoin(url, form["action"]), fields)

    url, body = go(opts.verification_uri)
    url, body = submit(url, body, lambda f: f["id"] == "op.deviceInputForm", [("user_code", opts.user_code)])
    if "Confirm Device" not in body:
        sys.exit(f"the code was not accepted:\n{body}")
    url, body = submit(url, body, lambda f: f["id"] == "op.deviceConfirmForm")
    action = "/abort" if opts.deny else "/login"
    url, body = submit(url, body, lambda f: f["action"].endswith(action))
    expected = "The Sign-in request was interrupted" if opts.deny else "Sign-in Success"
    if expected not in body:
        sys.exit(f"unexpected last page {url}:\n{body}")
    print(f"{'denied' if opts.deny else 'approved'}: {opts.user_code}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Headless Chromium as the person's browser, driven over the DevTools
protocol on a pipe (--remote-debugging-pipe), with the standard library only.

    chromium_page.py URL --until PREFIX --screenshot FILE.png [--timeout SECONDS]

Opens URL (an authorization URL), lets Chromium follow the authorization
server's redirects like any browser, waits (with a deadline, never a fixed
sleep) until a page whose URL starts with PREFIX (the loopback receiver) has
loaded, saves a screenshot of it, and prints one JSON line on stdout: the
page's URL, HTTP status and response headers, `lang`, title, the number of
`h1` headings, and its visible text as a person reads it.

Chromium runs with --no-sandbox (needed as root in CI) in a throwaway profile.
Its binary is `chromium` from PATH, or $CHROMIUM.
"""

import argparse
import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time


class Chromium:
    def __init__(self, binary, profile):
        # Chromium reads commands from fd 3 and writes answers and events to fd 4,
        # each message a JSON text ended by a NUL byte.
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        args = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            "--window-size=900,640",
            f"--user-data-dir={profile}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        shell = 'exec "$0" "$@" 3<&"$PIPE_IN" 4>&"$PIPE_OUT"'
        env = dict(os.environ, PIPE_IN=str(to_browser_r), PIPE_OUT=str(from_browser_w))
        self.proc = subprocess.Popen(
            ["sh", "-c", shell, *args],
            pass_fds=(to_browser_r, from_browser_w),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events = []

    def _read_message(self, deadline):
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe (did it start?)")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method, params=None, session=None, deadline=None):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = deadline or time.monotonic() + 30
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, predicate, deadline):
        """The first event (already received or to come) that satisfies predicate."""
        while True:
            for i, event in enumerate(self.events):
                if predicate(event):
                    return self.events.pop(i)
            self.events.append(self._read_message(deadline))

    def close(self):
        try:
            self.call("Browser.close", deadline=time.monotonic() + 5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url")
    ap.add_argument("--until", required=True, help="URL prefix of the page to wait for")
    ap.add_argument("--screenshot", required=True, help="where to save the PNG")
    ap.add_argument("--timeout", type=float, default=30.0)
    opts = ap.parse_args()
    binary = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not binary:
        sys.exit("chromium is not installed (scripts/setup.sh installs it)")
    deadline = time.monotonic() + opts.timeout
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        browser = Chromium(binary, profile)
        try:
            target = browser.call("Target.createTarget", {"url": "about:blank"}, deadline=deadline)
            session = browser.call(
                "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}, deadline=deadline
            )["sessionId"]
            for domain in ("Page", "Network", "Runtime"):
                browser.call(f"{domain}.enable", session=session, deadline=deadline)
            browser.call("Page.navigate", {"url": opts.url}, session=session, deadline=deadline)

            def is_receiver_response(e):
                if e.get("method") != "Network.responseReceived" or e.get("sessionId") != session:
                    return False
                p = e["params"]
                return p.get("type") == "Document" and p["response"]["url"].startswith(opts.until)

            response = browser.wait_event(is_receiver_response, deadline)["params"]["response"]
            # Then the document is complete: its load event, or already loaded.
            while True:
                state = browser.call(
                    "Runtime.evaluate",
                    {"expression": "[location.href, document.readyState]", "returnByValue": True},
                    session=session,
                    deadline=deadline,
                )["result"]["value"]
                if state[0].startswith(opts.until) and state[1] == "complete":
                    break
                browser.wait_event(
                    lambda e: e.get("method") == "Page.loadEventFired" and e.get("sessionId") == session, deadline
                )
            page = browser.call(
                "Runtime.evaluate",
                {
                    "expression": "({url: location.href, lang: document.documentElement.lang,"
                    " title: document.title, h1: document.querySelectorAll('h1').length,"
                    " heading: (document.querySelector('h1') || {}).innerText || '',"
                    " text: document.body.innerText})",
                    "returnByValue": True,
                },
                session=session,
                deadline=deadline,
            )["result"]["value"]
            shot = browser.call(
                "Page.captureScreenshot", {"format": "png"}, session=session, deadline=deadline
            )["data"]
            os.makedirs(os.path.dirname(os.path.abspath(opts.screenshot)), exist_ok=True)
            with open(opts.screenshot, "wb") as f:
                f.write(base64.b64decode(shot))
            page["status"] = response["status"]
            page["headers"] = {k.lower(): v for k, v in response["headers"].items()}
            print(json.dumps(page), flush=True)
        finally:
            browser.close()


if __name__ == "__main__":
    main()

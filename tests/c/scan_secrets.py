#!/usr/bin/env python3
"""Look for the secrets a C test run used in what it logged and printed.

    scan_secrets.py DIR

DIR holds what tests/c/test_secrets.c recorded: wire.jsonl (each OAuth exchange
through its transport: request headers, request body, response body), known.tsv
(more secrets, and the PEM files of the keys it used), log.txt and printed.txt.
Every secret value, and every 12-character window of one (a JWT's claims and
signature; its header is public), is looked for in log.txt and printed.txt.
Prints the figures and each leak; exits 1 on a leak or when a kind of secret the
run should have met is missing.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from urllib.parse import parse_qsl, unquote

WINDOW = 12
FIELDS = {
    "code", "code_verifier", "client_secret", "client_assertion", "refresh_token", "access_token", "id_token",
    "subject_token", "actor_token", "assertion", "device_code", "token", "registration_access_token",
}
EXPECTED = (
    "access_token", "refresh_token", "client_secret", "code", "code_verifier", "client_assertion",
    "DPoP proof", "private key", "subject_token", "assertion", "token",
)


def collect(d: Path) -> tuple[dict[str, str], set[str]]:
    """The secret values (each with the kind it was first met as), and every kind met."""
    secrets: dict[str, str] = {}
    kinds: set[str] = set()

    def add(what: str, value: str | None) -> None:
        if value:
            secrets.setdefault(value, what)
            kinds.add(what)

    def header(name: str, value: str) -> None:
        name = name.lower()
        if name == "dpop":
            add("DPoP proof", value)
        elif name == "authorization" and " " in value:
            scheme, credentials = value.split(" ", 1)
            add("authorization credentials", credentials)
            if scheme.lower() == "basic":
                _, _, secret = base64.b64decode(credentials).decode().partition(":")
                add("client_secret", unquote(secret))

    def body(text: str) -> None:
        try:
            doc = json.loads(text)
        except ValueError:
            if not text.startswith("<"):
                for k, v in parse_qsl(text):
                    if k in FIELDS:
                        add(k, v)
            return
        if isinstance(doc, dict):
            for k in FIELDS:
                if isinstance(doc.get(k), str):
                    add(k, doc[k])

    for line in (d / "wire.jsonl").read_text().splitlines():
        ex = json.loads(line)
        for name, value in ex["headers"]:
            header(name, value)
        body(ex["request"])
        body(ex["response"])
    for line in (d / "known.tsv").read_text().splitlines():
        what, _, value = line.partition("\t")
        if what == "pem file":
            pem = Path(value).read_text()
            add("private key", pem)
            add("private key", "".join(l for l in pem.splitlines() if not l.startswith("-----")))
        elif what.lower() in ("authorization", "dpop"):
            header(what, value)
        else:
            add(what, value)
    return secrets, kinds


def significant_parts(secret: str) -> list[str]:
    parts = secret.split(".")
    if len(parts) == 3 and parts[0].startswith("eyJ"):
        return parts[1:]
    return [secret]


def find_leak(text: str, secret: str) -> str | None:
    def line(at: int) -> str:
        start = text.rfind("\n", 0, at) + 1
        end = text.find("\n", at)
        return text[start : end if end >= 0 else len(text)]

    if secret in text:
        return line(text.index(secret))
    for part in significant_parts(secret):
        for i in range(len(part) - WINDOW + 1):
            at = text.find(part[i : i + WINDOW])
            if at >= 0:
                return line(at)
    return None


def main() -> int:
    d = Path(sys.argv[1])
    secrets, kinds = collect(d)
    logs = (d / "log.txt").read_text()
    printed = (d / "printed.txt").read_text()
    print(
        f"# {len(secrets)} distinct secret values; {len(logs)} bytes of log "
        f"({logs.count(chr(10))} messages), {len(printed)} bytes of error text"
    )
    status = 0
    for kind in EXPECTED:
        if kind not in kinds:
            print(f"not ok - no {kind} was collected")
            status = 1
    if " 5 " not in logs and " 4 " not in logs:
        print("not ok - no DEBUG or TRACE message was captured")
        status = 1
    canary = base64.urlsafe_b64encode(b"canary secret of the detector itself").decode()
    if find_leak(logs + "\n" + canary[3:19], canary) is None:
        print("not ok - the detector missed the canary")
        status = 1
    for value, what in sorted(secrets.items(), key=lambda kv: kv[1]):
        for place, text in (("log", logs), ("error text", printed)):
            found = find_leak(text, value)
            if found is not None:
                print(f"not ok - {what} in the {place}: {found[:300]}")
                status = 1
    if status == 0:
        print("ok - no secret in the log or the error text")
    return status


if __name__ == "__main__":
    sys.exit(main())

"""Schemathesis hooks: every generated request carries a fresh access token of the account
named by ST_LOGIN / ST_PASSWORD, logged in at ST_BASE and renewed every few seconds, so a
token revoked or expired during the run never turns the rest into 401s. With ST_REGISTER=1
(the plain-user run) a login that fails (the run renamed or deactivated the account, as it
may) registers a fresh plain account and goes on as that one."""

import json
import os
import secrets
import urllib.error
import urllib.request

import schemathesis

_account = {"login": os.environ["ST_LOGIN"], "password": os.environ["ST_PASSWORD"]}


def _post(path: str, body: dict) -> dict:
    request = urllib.request.Request(
        os.environ["ST_BASE"] + path,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


def _login() -> str:
    try:
        return _post("/auth/login", _account)["access_token"]
    except urllib.error.HTTPError:
        if os.environ.get("ST_REGISTER") != "1":
            raise
    name = "plain" + secrets.token_hex(6)
    _post("/auth/register", {"username": name, "email": f"{name}@example.com", "password": _account["password"]})
    _account["login"] = name
    return _post("/auth/login", _account)["access_token"]


@schemathesis.auth(refresh_interval=5)
class FreshLogin:
    def get(self, case, ctx):
        return _login()

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


@schemathesis.deserializer("application/x-ndjson")
def ndjson(ctx, response):
    """The import report: checked as the array of its lines, as the document describes it."""
    return [json.loads(line) for line in response.content.decode().splitlines() if line.strip()]

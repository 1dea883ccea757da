"""A short flow through a Python client generated from the live /openapi.json
(scripts/sdk-flow.sh): every call goes through the generated functions and models, not raw HTTP.

Register a user, log in, read yourself, list users as the bootstrap admin, and two problem
answers (a plain user listing users: 403; a wrong password: 401), each checked for its status,
its content type and the parsed problem. Any deviation exits with status 1 and says what it was.

Environment: SDK_BASE (the origin), SDK_ADMIN_PASSWORD; the generated package
`users_api_client` on PYTHONPATH.
"""

import importlib
import os
import pkgutil
import secrets
import sys
import traceback

BASE = os.environ["SDK_BASE"]
ADMIN_PASSWORD = os.environ["SDK_ADMIN_PASSWORD"]
PROBLEM_JSON = "application/problem+json"


class Deviation(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise Deviation(message)


def import_all():
    """Imports every generated module, so code the generator got wrong fails here, by name."""
    import users_api_client.api

    broken = []
    for module in pkgutil.walk_packages(users_api_client.api.__path__, "users_api_client.api."):
        try:
            importlib.import_module(module.name)
        except Exception as e:  # noqa: BLE001 - every failure is reported, by module
            broken.append(f"{module.name}: {type(e).__name__}: {e}")
    expect(not broken, "generated modules that do not import:\n  " + "\n  ".join(broken))


def answer(what, response, status, model):
    """`response` has `status` and parsed into `model`; returns the parsed value."""
    got = int(response.status_code)
    body = response.content[:500].decode(errors="replace")
    expect(got == status, f"{what}: expected {status}, got {got}: {body}")
    expect(isinstance(response.parsed, model),
           f"{what}: the client parsed {type(response.parsed).__name__}, not {model.__name__}: {body}")
    print(f"{what}: {got}")
    return response.parsed


def problem(what, response, status, type_):
    """`response` is a `status` problem of `type_`, parsed by the client as a Problem."""
    from users_api_client.models import Problem

    parsed = answer(what, response, status, Problem)
    media = response.headers.get("content-type", "")
    expect(media.startswith(PROBLEM_JSON), f"{what}: content type {media!r}, not {PROBLEM_JSON}")
    expect(parsed.status == status, f"{what}: the problem's status is {parsed.status}, not {status}")
    expect(parsed.type_ == type_, f"{what}: the problem's type is {parsed.type_!r}, not {type_!r}")
    expect(bool(parsed.title) and bool(parsed.detail), f"{what}: the problem has no title or detail")
    print(f"  problem {parsed.type_}: {parsed.title}: {parsed.detail}")


def log_in(client, login, password):
    from users_api_client.api.auth import login as login_op
    from users_api_client.models import LoginJson, TokenResponse

    tokens = answer(f"POST /auth/login as {login}",
                    login_op.sync_detailed(client=client, body=LoginJson(login=login, password=password)),
                    200, TokenResponse)
    expect(tokens.token_type.lower() == "bearer", f"token_type is {tokens.token_type!r}, not Bearer")
    expect(bool(tokens.access_token) and bool(tokens.refresh_token), "the login gave no access or refresh token")
    expect(tokens.expires_in > 0, f"expires_in is {tokens.expires_in}")
    return tokens


def flow():
    import_all()
    from users_api_client import AuthenticatedClient, Client
    from users_api_client.api.auth import login as login_op
    from users_api_client.api.auth import register
    from users_api_client.api.users import get_me, list_users
    from users_api_client.models import LoginJson, RegisterBody, UserPage, UserView

    anonymous = Client(base_url=BASE)
    name = f"sdk{secrets.token_hex(4)}"
    email = f"{name}@example.com"
    password = secrets.token_urlsafe(24)

    user = answer("POST /auth/register",
                  register.sync_detailed(client=anonymous,
                                         body=RegisterBody(username=name, email=email, password=password)),
                  201, UserView)
    expect(user.username == name and user.email == email,
           f"registered {user.username!r} <{user.email}>, asked for {name!r} <{email}>")
    expect(user.roles == ["user"], f"a new account has the roles {user.roles}, not ['user']")

    tokens = log_in(anonymous, name, password)
    me_client = AuthenticatedClient(base_url=BASE, token=tokens.access_token)
    me = answer("GET /users/me", get_me.sync_detailed(client=me_client), 200, UserView)
    expect(me.id == user.id and me.username == name, f"GET /users/me is {me.username!r} ({me.id}), not {name!r}")

    admin_tokens = log_in(anonymous, "admin", ADMIN_PASSWORD)
    admin = AuthenticatedClient(base_url=BASE, token=admin_tokens.access_token)
    page = answer("GET /users as admin", list_users.sync_detailed(client=admin), 200, UserPage)
    names = {u.username for u in page.items}
    expect({"admin", name} <= names, f"GET /users lists {sorted(names)}, without admin and {name}")
    print(f"  {len(page.items)} users: {', '.join(sorted(names))}")

    problem(f"GET /users as {name}", list_users.sync_detailed(client=me_client), 403, "/problems/forbidden")
    wrong = login_op.sync_detailed(client=anonymous, body=LoginJson(login=name, password=password + "x"))
    problem("POST /auth/login with a wrong password", wrong, 401, "/problems/invalid-credentials")


def main():
    try:
        flow()
    except Deviation as e:
        print(f"sdk flow failed: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - the generated client raising is a failure too
        traceback.print_exc()
        print(f"sdk flow failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print("sdk flow: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())

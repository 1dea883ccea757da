#!/usr/bin/env python3
"""Checks every answer the end-to-end suite received against the OpenAPI document (SPEC §9).

Usage: check-responses.py OPENAPI_JSON LOG_DIR
       check-responses.py --self-test OPENAPI_JSON

LOG_DIR holds the traffic log the test client writes (tests/it/helpers/record.rs: one JSON
line per answer). Each answer is validated by openapi-core: its route and method must be in
the document, its status declared (a success or redirect status explicitly; an error may fall
to the `default` problem response), its declared headers and its body must match the schema
of its media type. An answer to a path no route has must be the `404` problem. The `/v1`
alias is checked as the route it aliases.

Not part of the document, and so not checked: the interactive docs' page and assets
(`/docs`), the edge's own health route (`/edge/health`), and the origin's internal routes
(`/internal/*`), which the edge never forwards from clients.

Prints how many answers were checked and every mismatch, grouped; exits 1 on any.
"""

import collections
import glob
import json
import re
import sys

from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse

NOT_DOCUMENTED = (re.compile(r"^/docs(/.*)?$"), re.compile(r"^/edge/health$"),
                  re.compile(r"^/internal(/.*)?$"))
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def templates(doc):
    """(regex, template) of every path of the document, literal paths first."""
    out = []
    for template in doc["paths"]:
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        out.append((re.compile(pattern), template))
    out.sort(key=lambda t: t[1].count("{"))
    return out


def match(paths, path):
    for regex, template in paths:
        if regex.match(path):
            return template
    return None


def is_problem(entry):
    if not entry["headers"].get("content-type", "").startswith("application/problem+json"):
        return False
    try:
        body = json.loads(entry["body"])
    except ValueError:
        return False
    return isinstance(body, dict) and all(k in body for k in ("type", "title", "status"))


def declared(operation, status):
    responses = operation.get("responses", {})
    return str(status) in responses or f"{str(status)[0]}XX" in responses


def check(api, doc, paths, entry):
    """None when the answer matches the document, else why not."""
    path = entry["path"]
    if path.startswith("/v1/") or path == "/v1":
        path = path[3:] or "/"
    if any(r.match(path) for r in NOT_DOCUMENTED):
        return "skip"
    status = entry["status"]
    template = match(paths, path)
    if template is None:
        if status == 404 and is_problem(entry):
            return None
        return f"no route of the document has this path (answered {status})"
    method = entry["method"].lower()
    # HEAD is GET without the body (RFC 9110 §9.3.2): it is checked as GET's status.
    operation = doc["paths"][template].get("get" if method == "head" else method)
    if operation is None:
        if status == 405 and is_problem(entry):
            return None
        return f"{entry['method']} is not documented on {template} (answered {status})"
    if status < 400 and not declared(operation, status):
        return f"status {status} is not declared"
    if method == "head":
        return None
    query = {}
    for part in (entry.get("query") or "").split("&"):
        if part:
            name, _, value = part.partition("=")
            query.setdefault(name, value)
    headers = entry["headers"]
    content_type = headers.get("content-type", "")
    request = MockRequest("http://localhost", method, path, path_pattern=template, args=query)
    response = MockResponse(entry["body"].encode(), status_code=status, headers=headers,
                            content_type=content_type)
    try:
        api.validate_response(request, response)
    except Exception as e:  # openapi-core's validation errors, with their causes
        causes = []
        err = e
        while err is not None and len(causes) < 4:
            text = str(err).strip()
            if text and text not in causes:
                causes.append(text)
            sub = getattr(err, "schema_errors", None)
            if sub:
                causes.extend(str(s.message)[:300] for s in list(sub)[:3])
            err = err.__cause__
        return f"{type(e).__name__}: " + " / ".join(causes)[:900]
    return None


def load(doc_path):
    with open(doc_path) as f:
        doc = json.load(f)
    # Problem bodies are JSON under their own media type (RFC 9457 §3).
    # NDJSON (the import report) is checked as the array of its lines.
    config = Config(extra_media_type_deserializers={
        "application/problem+json": json.loads,
        "application/x-ndjson": lambda text: [json.loads(line) for line in text.splitlines()
                                              if line.strip()],
    })
    return doc, OpenAPI.from_dict(doc, config=config), templates(doc)


def self_test(doc_path):
    """The checker refuses answers the document does not describe, and passes one it does."""
    doc, api, paths = load(doc_path)
    user = {"id": "01a23a7d-b57e-70f9-b9e0-000000000000", "username": "someone"}
    json_headers = {"content-type": "application/json"}
    bad = [
        ("GET", "/users/me", 200, json_headers, json.dumps(user)),  # required members missing
        ("GET", "/users/me", 299, json_headers, "{}"),  # an undeclared status
        ("GET", "/no/such/route", 200, json_headers, "{}"),  # a route not in the document
        ("GET", "/healthz", 500, json_headers, "{}"),  # an error that is not a problem
        ("TRACE", "/users/me", 200, json_headers, "{}"),  # a method not in the document
    ]
    for method, path, status, headers, body in bad:
        entry = {"method": method, "path": path, "query": None, "status": status,
                 "headers": headers, "body": body}
        if check(api, doc, paths, entry) is None:
            print(f"check-responses self-test: {method} {path} -> {status} passed", file=sys.stderr)
            return 1
    good = {"method": "GET", "path": "/healthz", "query": None, "status": 200,
            "headers": json_headers, "body": json.dumps({"status": "ok"})}
    verdict = check(api, doc, paths, good)
    if verdict is not None:
        print(f"check-responses self-test: GET /healthz refused: {verdict}", file=sys.stderr)
        return 1
    print(f"check-responses self-test: {len(bad)} bad answers refused, a good one passed")
    return 0


def main():
    if sys.argv[1] == "--self-test":
        return self_test(sys.argv[2])
    doc_path, log_dir = sys.argv[1], sys.argv[2]
    doc, api, paths = load(doc_path)
    files = sorted(glob.glob(f"{log_dir}/*.ndjson"))
    seen = {}
    failures = collections.defaultdict(list)
    total = skipped = 0
    for name in files:
        with open(name) as f:
            for line in f:
                entry = json.loads(line)
                total += 1
                key = (entry["method"], entry["path"], entry["status"],
                       entry["headers"].get("content-type"), entry["body"],
                       tuple(sorted(h for h in entry["headers"] if h in ("etag", "location"))))
                if key not in seen:
                    seen[key] = check(api, doc, paths, entry)
                verdict = seen[key]
                if verdict == "skip":
                    skipped += 1
                elif verdict is not None:
                    template = match(paths, entry["path"].removeprefix("/v1")) or entry["path"]
                    failures[(entry["method"], template, entry["status"], verdict)].append(entry)
    checked = total - skipped
    print(f"check-responses: {checked} answers checked against the document "
          f"({len(seen)} distinct), {skipped} of undocumented internal routes skipped, "
          f"{sum(len(v) for v in failures.values())} mismatched in {len(failures)} group(s)")
    if total == 0:
        print(f"check-responses: no traffic was recorded in {log_dir}", file=sys.stderr)
        return 1
    for (method, template, status, verdict), entries in sorted(failures.items()):
        example = entries[0]
        print(f"\n  {method} {template} -> {status} ({len(entries)}x; e.g. {example['test']}: "
              f"{example['method']} {example['path']})\n    {verdict}\n    body: "
              f"{example['body'][:300]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

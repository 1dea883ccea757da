#!/usr/bin/env python3
"""Checks the origin's import rules (origin/src), and fails with a list of every breach.

- Layers: every `crate::` path a file names resolves to a file of the same or a lower layer;
  the graph of those file-to-file imports has no circle.
- Only `http/` and `startup.rs` name axum, tower or tower_http.
- Nothing outside `http/` names `ApiError`.
- `db/` names only `db/` of the crate, and of other crates only std, users_core,
  tokio_postgres, deadpool_postgres (the pool of tokio-postgres clients), uuid, serde_json and
  time.

A `mod x;` line declares a child module; it is not an import. `use super::…` counts as an
import of the parent module's file.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "origin" / "src"

# Highest layer first. A file may name files of its own layer or of lower ones.
LAYERS = [
    ("binary", ["main.rs", "lib.rs"]),
    ("startup", ["startup.rs"]),
    ("http", ["http/"]),
    ("domain", ["accounts.rs", "tokens.rs", "write.rs", "mail.rs", "monitor.rs",
                "verification.rs", "idempotency.rs", "import/", "export.rs", "mfa/",
                "stand_ins.rs"]),
    ("state", ["state.rs"]),
    ("infrastructure", ["hashing/", "cache.rs", "ratelimit.rs", "redis_store.rs",
                        "metrics.rs", "keys.rs", "mfa_keys.rs", "legacy_hash.rs",
                        "memo.rs", "listen.rs"]),
    ("db", ["db/"]),
    ("base", ["config.rs", "clock.rs", "fields.rs"]),
]
AXUM = re.compile(r"\b(axum|tower|tower_http)::")
DB_CRATES = {"std", "core", "users_core", "tokio_postgres", "deadpool_postgres", "uuid",
             "serde_json", "time", "super", "crate", "self"}


def layer_of(rel: str) -> int:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in prefixes):
            return rank
    raise SystemExit(f"check-imports: {rel} belongs to no layer; add it to LAYERS")


def module_of(rel: str) -> list[str]:
    parts = rel[:-3].split("/")
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


def file_of(segments: list[str]) -> str | None:
    """The file of the longest prefix of `segments` that is a module of the crate."""
    for n in range(len(segments), 0, -1):
        base = "/".join(segments[:n])
        for candidate in (f"{base}.rs", f"{base}/mod.rs"):
            if (SRC / candidate).is_file():
                return candidate
    return None


def strip(text: str) -> str:
    """Drops comments and string literals, so only code is read."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'r#*"(?:.|\n)*?"#*', '""', text)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def use_paths(code: str) -> list[str]:
    """Every path of every `use` tree, expanded (`use a::{b, c::d}` → a::b, a::c::d)."""
    out = []
    for tree in re.findall(r"\buse\s+([^;]+);", code):
        stack = [("", re.sub(r"\s+", "", tree))]
        while stack:
            prefix, rest = stack.pop()
            m = re.match(r"^([^{]*)\{(.*)\}$", rest)
            if not m:
                out.append(prefix + rest)
                continue
            head, body = m.groups()
            depth, item, items = 0, "", []
            for ch in body:
                if ch == "," and depth == 0:
                    items.append(item)
                    item = ""
                    continue
                depth += ch == "{"
                depth -= ch == "}"
                item += ch
            items.append(item)
            stack.extend((prefix + head, i) for i in items if i)
    return out


def main() -> int:
    files = sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.rs"))
    problems, edges = [], {}
    for rel in files:
        code = strip((SRC / rel).read_text())
        # Unit tests may reach anywhere in their own file's module.
        code = re.split(r"#\[cfg\(test\)\]\s*mod\s+tests", code)[0]
        here = module_of(rel)
        targets = set()
        paths = use_paths(code) + re.findall(r"\b(crate(?:::\w+)+)", code)
        for path in paths:
            segs = [s for s in path.replace("self::", "").split("::") if s]
            if not segs:
                continue
            if segs[0] == "crate":
                target = file_of(segs[1:])
            elif segs[0] == "super":
                up = here[:]
                while segs and segs[0] == "super":
                    up, segs = up[:-1], segs[1:]
                target = file_of(up + segs) or file_of(up)
            else:
                if rel.startswith("db/") and segs[0] not in DB_CRATES:
                    problems.append(f"{rel}: db/ names the crate {segs[0]}")
                continue
            if target and target != rel:
                targets.add(target)
        if AXUM.search(code) and not (rel.startswith("http/") or rel == "startup.rs"):
            problems.append(f"{rel}: names axum/tower outside http/ and startup.rs")
        if re.search(r"\bApiError\b", code) and not rel.startswith("http/"):
            problems.append(f"{rel}: names ApiError outside http/")
        for target in sorted(targets):
            if rel.startswith("db/") and not target.startswith("db/"):
                problems.append(f"{rel}: db/ imports {target}")
            if layer_of(target) < layer_of(rel):
                problems.append(
                    f"{rel} ({LAYERS[layer_of(rel)][0]}) imports {target} "
                    f"({LAYERS[layer_of(target)][0]}), a higher layer"
                )
        edges[rel] = targets

    # Circles: depth-first search for a back edge.
    state, stack = {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                circle = stack[stack.index(nxt):] + [nxt]
                problems.append("import circle: " + " -> ".join(circle))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for rel in files:
        if rel not in state:
            visit(rel)

    for p in problems:
        print(f"check-imports: {p}", file=sys.stderr)
    count = sum(len(t) for t in edges.values())
    if problems:
        print(f"check-imports: {len(problems)} breach(es) in {len(files)} files", file=sys.stderr)
        return 1
    print(f"check-imports: {len(files)} files, {count} imports, layers and rules hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""/docs: the OpenAPI document as one self-contained HTML page.

FastAPI's own pages load Swagger UI or ReDoc from a CDN; a gateway on a closed network
must not. This page is rendered on the server from /openapi.json, with no script, no
style sheet and no image from anywhere (its Content-Security-Policy says so).
"""

from __future__ import annotations

import html
from typing import Any

CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}
h2{margin-top:2em;border-bottom:1px solid #ccc}
.op{margin:1em 0;padding:.5em 1em;border-left:4px solid #69c;background:#f6f8fa}
.m{font-weight:bold;display:inline-block;min-width:4.5em}
code{background:#eee;padding:0 .2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.2em .5em}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _params(op: dict[str, Any]) -> str:
    rows = []
    for p in op.get("parameters") or []:
        schema = p.get("schema") or {}
        kind = schema.get("type") or "/".join(
            str(a.get("type")) for a in schema.get("anyOf", []) if a.get("type") != "null"
        )
        rows.append(
            f"<tr><td><code>{_e(p.get('name'))}</code></td><td>{_e(p.get('in'))}</td>"
            f"<td>{_e(kind)}</td><td>{_e(p.get('description', ''))}</td></tr>"
        )
    if not rows:
        return ""
    head = "<tr><th>parameter</th><th>in</th><th>type</th><th>meaning</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _body(op: dict[str, Any]) -> str:
    content = (op.get("requestBody") or {}).get("content") or {}
    if not content:
        return ""
    return "<p>body: " + ", ".join(f"<code>{_e(t)}</code>" for t in content) + "</p>"


def render(spec: dict[str, Any]) -> str:
    info = spec.get("info") or {}
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(info.get('title', 'API'))}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(info.get('title', 'API'))} {_e(info.get('version', ''))}</h1>",
        f"<p>{_e(info.get('description', ''))}</p>",
        "<p>The machine-readable description: <a href='/openapi.json'>/openapi.json</a>.</p>",
    ]
    for path, ops in (spec.get("paths") or {}).items():
        out.append(f"<h2><code>{_e(path)}</code></h2>")
        for method, op in ops.items():
            codes = ", ".join(_e(c) for c in (op.get("responses") or {}))
            out.append(
                f"<div class='op'><span class='m'>{_e(method.upper())}</span>"
                f"{_e(op.get('summary', ''))}{_params(op)}{_body(op)}"
                f"<p>answers: {codes}</p></div>"
            )
    out.append("</body></html>")
    return "".join(out)

"""The dashboard and the chat widget: the built files of `dashboard/` (`npm run build` makes
`dashboard/dist/`), served at `/` beside the API.

They are a fallback, never a shadow: a request reaches them only when no API route matched
(the router's `default`), only for GET and HEAD, and never under the API's own prefixes, which
keep their problem+json 404. A path that names no built file gets `index.html`, so the
dashboard's own paths (`/tickets/<id>`, `/admin/members`) survive a reload. `/widget-demo`
embeds the widget for the assistant named in its query.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.types import Receive, Scope, Send

RESERVED_PREFIXES = ("/api/", "/docs", "/redoc", "/openapi.json", "/healthz", "/readyz")
NOT_BUILT = (
    "<!doctype html><html lang='en'><title>Help desk</title><main><h1>The dashboard is not "
    "built</h1><p>Run <code>make run</code> (it builds it), or <code>cd dashboard &amp;&amp; "
    "npm ci &amp;&amp; npm run build</code>, then reload.</p></main></html>"
)
# No file the build makes has a longer path; a longer one, or one with NUL (which no file
# name can hold), is not looked up at all.
PATH_MAX_LENGTH = 512
# A widget key or an assistant id as the demo page accepts them in its query.
_TOKEN = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")

DASHBOARD_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def _headers(policy: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


class DashboardFiles:
    """The ASGI app the router falls back to."""

    def __init__(self, root: Path, widget_api_url: str, not_found: Any) -> None:
        self.root = root.resolve()
        self.widget_api_url = widget_api_url.rstrip("/")
        self.not_found = not_found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "/")
        if (
            scope["type"] != "http"
            or scope["method"] not in ("GET", "HEAD")
            or path.startswith(RESERVED_PREFIXES)
            or len(path) > PATH_MAX_LENGTH
            or "\x00" in path
        ):
            await self.not_found(scope, receive, send)
            return
        response = self.respond(path, dict(_query(scope)))
        await response(scope, receive, send)

    def respond(self, path: str, query: dict[str, str]) -> Response:
        if path == "/widget-demo":
            return self.demo_page(query)
        index = self.root / "index.html"
        if not index.is_file():
            return HTMLResponse(NOT_BUILT, status_code=503, headers=_headers(DASHBOARD_POLICY))
        candidate = (self.root / path.lstrip("/")).resolve()
        if path != "/" and candidate.is_file() and candidate.is_relative_to(self.root):
            # Hashed assets never change; widget.js and the rest are revalidated.
            cache = (
                "public, max-age=31536000, immutable"
                if candidate.parent.name == "assets"
                else "no-cache"
            )
            headers = {**_headers(DASHBOARD_POLICY), "Cache-Control": cache}
            return FileResponse(candidate, headers=headers)
        page = index.read_text(encoding="utf-8").replace(
            '<html lang="en">',
            f'<html lang="en" data-widget-api="{html.escape(self.widget_api_url)}">',
            1,
        )
        headers = {**_headers(DASHBOARD_POLICY), "Cache-Control": "no-cache"}
        return HTMLResponse(page, headers=headers)

    def demo_page(self, query: dict[str, str]) -> Response:
        assistant = query.get("assistant_id", "")
        key = query.get("widget_key", "")
        valid = bool(_TOKEN.fullmatch(assistant) and _TOKEN.fullmatch(key))
        escape = html.escape
        form = (
            "<form method='get' action='/widget-demo'>"
            "<p>Choose the assistant whose widget to try (an admin finds its id and widget key "
            "on the dashboard's Assistants page).</p>"
            f"<label for='a'>Assistant id</label> <input id='a' name='assistant_id' "
            f"value='{escape(assistant)}'> "
            f"<label for='k'>Widget key</label> <input id='k' name='widget_key' "
            f"value='{escape(key)}'> "
            "<button type='submit'>Show the widget</button></form>"
        )
        problem = (
            ""
            if valid or not (assistant or key)
            else "<p role='alert'>An assistant id and a widget key are letters, digits and "
            "<code>_ . : -</code>, at most 128 of them; check what you pasted.</p>"
        )
        script = (
            f"<script src='/widget.js' data-assistant-id='{escape(assistant)}' "
            f"data-widget-key='{escape(key)}' data-api='{escape(self.widget_api_url)}'></script>"
            if valid
            else ""
        )
        page = (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<title>Widget demo — Help desk</title></head><body><main>"
            "<h1>Widget demo</h1><p>This page embeds the help desk's chat widget the way a "
            "customer's site does.</p>"
            f"{problem}{form}</main>{script}</body></html>"
        )
        policy = (
            "default-src 'none'; script-src 'self'; style-src 'self'; "
            f"connect-src {self.widget_api_url}; form-action 'self'; base-uri 'none'; "
            "frame-ancestors 'none'"
        )
        return HTMLResponse(page, headers={**_headers(policy), "Cache-Control": "no-cache"})


def _query(scope: Scope) -> list[tuple[str, str]]:
    raw: bytes = scope.get("query_string", b"")
    return parse_qsl(raw.decode("latin-1"))[:20]


def serve_dashboard(app: FastAPI, root: Path, widget_api_url: str) -> None:
    """Make the built dashboard the router's fallback."""
    app.router.default = DashboardFiles(root, widget_api_url, app.router.default)

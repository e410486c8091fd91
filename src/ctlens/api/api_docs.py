"""Offline API docs: ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) with their assets served by the service.

The JavaScript and CSS come from the ``fastapi-offline`` package (part of the ``server`` extra) and are served
under ``/docs-assets/``; nothing is loaded from a CDN. The pages carry no inline script (Swagger UI is started by
``/docs-assets/swagger-init.js``, which reads the OpenAPI URL from the page), so their Content-Security-Policy
(:data:`DOCS_CSP`) allows scripts from the service only. Without the package the pages say what to install.

Example:
    >>> "/docs-assets/swagger-ui-bundle.js" in swagger_html("")
    True
    >>> "https://" in swagger_html("") + redoc_html("")
    False
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"
DOCS_PATHS = ("/docs", "/redoc", ASSETS + "/")
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'"
)
"""CSP of the docs pages: scripts only from the service; inline styles (both UIs set style attributes), data:
images (Swagger UI's icons) and blob: workers (ReDoc's search) allowed."""

SWAGGER_INIT = """// Starts Swagger UI on the page's OpenAPI document (served by ctlens; no inline script, no CDN).
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi"),
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
  });
})();
"""

MISSING = (
    "<!doctype html><html><head><meta charset='utf-8'><title>ctlens API docs</title></head><body>"
    "<p>The offline docs need the <code>fastapi-offline</code> package: <code>pip install 'ctlens[server]'</code>. "
    "The OpenAPI document is at <a href='{root}/openapi.json'>/openapi.json</a>.</p></body></html>"
)


def asset_folder() -> Path | None:
    """The folder of Swagger UI / ReDoc files shipped by ``fastapi-offline``, or None when it is not installed.

    Example:
        >>> folder = asset_folder()
        >>> folder is None or (folder / "swagger-ui-bundle.js").is_file()
        True
    """
    try:
        import fastapi_offline
    except ImportError:
        return None
    folder = Path(fastapi_offline.__file__).parent / "static"
    needed = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js")
    return folder if all((folder / name).is_file() for name in needed) else None


def _page(title: str, ui: str, r: str, head: str, body: str) -> str:
    """A docs page named ``title - ui`` with the favicon under the escaped root path ``r``."""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)} - {ui}</title>"
        f"<link rel='icon' href='{r}{ASSETS}/favicon.png'>{head}</head><body>{body}</body></html>"
    )


def swagger_html(root: str, title: str = "ctlens API") -> str:
    """The Swagger UI page (``root``: the app's root path, usually empty)."""
    r = escape(root, quote=True)
    return _page(
        title,
        "Swagger UI",
        r,
        f"<link rel='stylesheet' href='{r}{ASSETS}/swagger-ui.css'>",
        f"<div id='swagger-ui' data-openapi='{r}/openapi.json'></div>"
        f"<script src='{r}{ASSETS}/swagger-ui-bundle.js'></script>"
        f"<script src='{r}{ASSETS}/swagger-init.js'></script>",
    )


def redoc_html(root: str, title: str = "ctlens API") -> str:
    """The ReDoc page (``root``: the app's root path, usually empty)."""
    r = escape(root, quote=True)
    body = f"<redoc spec-url='{r}/openapi.json'></redoc><script src='{r}{ASSETS}/redoc.standalone.js'></script>"
    return _page(title, "ReDoc", r, "", body)


def install_docs(app: FastAPI) -> None:
    """Add ``/docs``, ``/redoc`` and ``/docs-assets/*`` to ``app`` (created with ``docs_url=None, redoc_url=None``)."""
    folder = asset_folder()

    def page(request: Request, html: Callable[[str, str], str]) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return HTMLResponse(html(root, app.title) if folder else MISSING.format(root=escape(root)))

    @app.get("/docs", include_in_schema=False)
    def swagger(request: Request) -> HTMLResponse:
        return page(request, swagger_html)

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        return page(request, redoc_html)

    @app.get(ASSETS + "/swagger-init.js", include_in_schema=False)
    def swagger_init() -> Response:
        return Response(SWAGGER_INIT, media_type="text/javascript", headers={"Cache-Control": "public, max-age=3600"})

    if folder is not None:
        app.mount(ASSETS, StaticFiles(directory=folder), name="docs-assets")

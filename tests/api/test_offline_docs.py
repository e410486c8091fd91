"""`/docs` and `/redoc` over real HTTP: same-origin assets only, served by the service; the API-key schemes."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest


class _Refs(HTMLParser):
    """Every ``src`` / ``href`` / ``spec-url`` in a page, and whether any script is inline."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self._in_script_without_src = False

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        self.urls += [v for k, v in attrs if k in ("src", "href", "spec-url") and v]
        self._in_script_without_src = tag == "script" and not values.get("src")

    def handle_data(self, data):
        if self._in_script_without_src and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag):
        self._in_script_without_src = False


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_same_origin_assets(server, page):
    client = server.client(key=None)  # the docs need no key
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "http://" not in r.text and "https://" not in r.text
    refs = _Refs()
    refs.feed(r.text)
    assert refs.inline_scripts == 0
    scripts = [u for u in refs.urls if u.endswith(".js")]
    assert scripts and any(("swagger-ui-bundle" if page == "/docs" else "redoc.standalone") in u for u in scripts)
    for url in refs.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and url.startswith("/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        if url.endswith(".js"):
            assert "javascript" in asset.headers["content-type"] and len(asset.content) > 100
        if url.endswith(".css"):
            assert asset.headers["content-type"].startswith("text/css")
    csp = r.headers["content-security-policy"]
    script_src = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
    assert script_src.split()[1:] == ["'self'"]  # no inline script, no CDN


def test_openapi_declares_the_api_key_schemes(server):
    spec = server.client(key=None).get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer", "description": schemes["bearer"]["description"]}
    assert schemes["apiKey"]["type"] == "apiKey" and schemes["apiKey"]["in"] == "header"
    assert schemes["apiKey"]["name"] == "X-API-Key"
    protected = spec["paths"]["/api/studies/{study_id}/overlays/labels.nii.gz"]["get"]["security"]
    assert {"bearer": []} in protected and {"apiKey": []} in protected
    assert "security" not in spec["paths"]["/healthz"]["get"]
    # the scheme the docs' Authorize button sends is the one the service accepts
    assert server.client(key=None).get("/api/me", headers={"X-API-Key": server.key}).status_code == 200

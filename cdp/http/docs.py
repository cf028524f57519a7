"""The API documentation pages of ``cdp serve``, served with no internet access.

FastAPI's own ``/docs`` and ``/redoc`` pages load Swagger UI and ReDoc from a
CDN, so on a machine without internet (or behind a strict proxy) they are
blank. Here the same pages load their JavaScript, CSS and icon from the
server itself, under ``/docs/assets/``:

- the files come from the ``fastapi-offline`` package (MIT; it ships the
  ``swagger-ui-dist`` 5 build, Apache-2.0, and ReDoc's standalone bundle,
  MIT), a dependency of this package, so they are installed with it and pinned
  by its version;
- Swagger UI's online validator badge is switched off (it would send the
  schema's address to an outside service);
- ReDoc is served without Google Fonts;
- both pages carry a Content-Security-Policy that lets them load and connect
  to this server only. ReDoc's bundle always shows the Redocly logo from
  Redocly's CDN (no option turns it off); the policy blocks that one image,
  and the page hides the broken logo itself.

``tests/integration/test_api_docs.py`` checks that the pages reference no
address outside the server and that every asset they reference answers.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs/assets"
ASSETS = Path(fastapi_offline.__file__).parent / "static"
SWAGGER_JS = "swagger-ui-bundle.js"
SWAGGER_CSS = "swagger-ui.css"
REDOC_JS = "redoc.standalone.js"
FAVICON = "favicon.png"
# 'unsafe-inline': the pages start the UIs with an inline script (FastAPI's
# templates) and both UIs inject <style> elements; blob: workers: ReDoc's search.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
    "worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'self'"
)


def _only_this_server(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CSP
    return page


def install(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Serve Swagger UI at ``docs_url`` and ReDoc at ``redoc_url`` from local assets.

    The app must be made with ``docs_url=None, redoc_url=None`` so that
    FastAPI's CDN pages are not registered first."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")

    def local(request: Request, name: str) -> str:
        # root_path: behind a proxy that mounts the app under a prefix.
        return f"{request.scope.get('root_path', '')}{ASSETS_URL}/{name}"

    def openapi_url(request: Request) -> str:
        return f"{request.scope.get('root_path', '')}{app.openapi_url}"

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return _only_this_server(
            get_swagger_ui_html(
                openapi_url=openapi_url(request),
                title=f"{app.title} - Swagger UI",
                swagger_js_url=local(request, SWAGGER_JS),
                swagger_css_url=local(request, SWAGGER_CSS),
                swagger_favicon_url=local(request, FAVICON),
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return _only_this_server(
            get_redoc_html(
                openapi_url=openapi_url(request),
                title=f"{app.title} - ReDoc",
                redoc_js_url=local(request, REDOC_JS),
                redoc_favicon_url=local(request, FAVICON),
                with_google_fonts=False,
            )
        )

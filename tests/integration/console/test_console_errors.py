"""An error a console screen raises is a console page, never the API's JSON.

The app is ``create_app`` as served; a route is added to it that fails the
way a screen can (a query the database refused), and one API-side route
that fails the same way keeps the API's JSON error shape.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from cdp.config import Settings
from cdp.errors import QueryError
from cdp.http.app import create_app
from cdp.services.users import UserStore
from tests.integration.console.conftest import sign_in_as
from tests.loopback import serve_app

pytestmark = pytest.mark.integration


def failing(app: FastAPI) -> FastAPI:
    @app.get("/console/test-failing-query")
    def query() -> None:
        raise QueryError("Out of Memory Error: failed to pin block of size 256.0 KiB")

    @app.get("/v1/test-failing-query")
    def api() -> None:
        raise QueryError("the API's own failure")

    return app


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(tmp_path_factory.mktemp("console-errors") / "data")
    settings.data_dir.mkdir(parents=True)
    UserStore(settings.data_dir).add("hanako", "viewer", "hanako password 1")
    yield from serve_app(failing(create_app(settings)))


def test_a_failing_screen_answers_with_a_page_that_says_why(served: str) -> None:
    client = sign_in_as(served, "hanako", "hanako password 1")
    try:
        failed = client.get("/console/test-failing-query")
        assert failed.status_code == 400
        assert failed.headers["content-type"].startswith("text/html")
        assert "Out of Memory Error" in failed.text and 'id="signout"' in failed.text
        api = client.get("/v1/test-failing-query")
        assert api.status_code == 400
        assert api.json() == {"success": False, "error": "the API's own failure", "status": 400}
    finally:
        client.close()

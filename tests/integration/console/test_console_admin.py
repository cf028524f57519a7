"""The Admin screen over real HTTP: sources and write keys, read tokens, console
users, privacy requests and the audit tail, admins only.

A server of its own (an empty data directory: nothing here needs the shop, and
the privacy requests filed here must not reach the shared one), signed in
through the form as a browser does. What the console did is checked through
the doors it opened (the collector takes the new key, the read API the new
token, the sign-in the new user) and the services' own files.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cdp.config import Settings
from cdp.http.app import create_app
from cdp.services.privacy import audit
from cdp.services.privacy.requests import Requests
from cdp.services.privacy.suppressions import SuppressionList
from cdp.services.sources import SourceRegistry
from cdp.services.tokens import TokenRegistry
from cdp.services.users import UserStore
from tests.integration.console.conftest import CSRF, PASSWORDS, SignedIn
from tests.loopback import serve_app

pytestmark = pytest.mark.integration

ADMIN = "/console/admin"
KEY = re.compile(r'id="secret-value"[^>]*value="((?:wk|rt)_[A-Za-z0-9_-]+)"')
PAGES = ("/console/", "/console/audiences", ADMIN, "/console/audiences/jobs/x")


@dataclass
class Site:
    settings: Settings
    url: str

    def sign_in(self, name: str, password: str, page: str = ADMIN) -> SignedIn:
        """A client signed in through the form, landed on ``page`` (its CSRF token kept)."""
        client = SignedIn(base_url=self.url, follow_redirects=False, timeout=30)
        form = client.get(f"/console/login?next={page}")
        token = CSRF.search(form.text)
        assert token, form.text
        answer = client.post(
            "/console/login",
            data={"csrf": token.group(1), "user": name, "password": password, "next": page},
        )
        assert answer.status_code == 303, answer.text
        landed = client.get(answer.headers["location"])
        match = CSRF.search(landed.text)
        assert match, landed.text
        client.csrf = match.group(1)
        return client

    def role(self, role: str) -> SignedIn:
        name, password = PASSWORDS[role]
        return self.sign_in(name, password, ADMIN if role == "admin" else "/console/audiences")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    settings = Settings(tmp_path_factory.mktemp("console-admin") / "data")
    users = UserStore(settings.data_dir)
    for role, (name, password) in PASSWORDS.items():
        users.add(name, role, password)
    for url in serve_app(create_app(settings)):
        yield Site(settings, url)


@pytest.fixture(scope="module")
def admin(site: Site) -> Iterator[SignedIn]:
    client = site.role("admin")
    yield client
    client.close()


def audit_text(data_dir: Path) -> str:
    folder = audit.directory(data_dir)
    return "".join(p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.jsonl")))


def post(client: SignedIn, path: str, csrf: str | None = None, **data: str) -> httpx.Response:
    return client.post(path, data={"csrf": client.csrf if csrf is None else csrf, **data})


# (path, form) of every change the admin screen makes
CHANGES = [
    ("/console/admin/sources", {"name": "refused-source"}),
    ("/console/admin/sources/web/rotate", {}),
    ("/console/admin/sources/web/revoke", {}),
    ("/console/admin/sources/web/origins", {"add": "https://refused.example.jp"}),
    ("/console/admin/tokens", {"name": "refused-token", "scope": "profiles:read"}),
    ("/console/admin/tokens/reader/revoke", {}),
    ("/console/admin/users", {"name": "refused-user", "role": "admin", "password": "x" * 12}),
    ("/console/admin/users/yuto-viewer/role", {"role": "admin"}),
    ("/console/admin/users/yuto-viewer/unlock", {}),
    ("/console/admin/users/yuto-viewer/remove", {}),
    ("/console/admin/privacy", {"type": "suppress", "identifier": "email:refused@example.jp"}),
]


def state(settings: Settings) -> tuple[object, ...]:
    """Everything the admin screen can change."""
    return (
        SourceRegistry(settings.data_dir).list(),
        TokenRegistry(settings.data_dir).list(),
        [(u.name, u.role) for u in UserStore(settings.data_dir).list()],
        [r.id for r in Requests(settings.data_dir).all()],
    )


def test_only_admins_open_the_page_or_change_anything(site: Site) -> None:
    SourceRegistry(site.settings.data_dir).add("web")
    TokenRegistry(site.settings.data_dir).add("reader", ["profiles:read"])
    before = state(site.settings)
    for role in ("viewer", "marketer"):
        client = site.role(role)
        page = client.get(ADMIN)
        assert page.status_code == 403, role
        assert 'id="sources"' not in page.text
        for path, form in CHANGES:
            assert post(client, path, **form).status_code == 403, (role, path)
        client.close()
    assert state(site.settings) == before


def test_every_change_needs_the_forms_csrf_token(site: Site, admin: SignedIn) -> None:
    before = state(site.settings)
    for path, form in CHANGES:
        for csrf in ("", "not-the-token"):
            answer = post(admin, path, csrf=csrf, **form)
            assert answer.status_code == 403, path
    assert state(site.settings) == before


def test_a_write_key_or_read_token_opens_no_console_page(site: Site) -> None:
    key = SourceRegistry(site.settings.data_dir).add("bearer-source")
    token = TokenRegistry(site.settings.data_dir).add(
        "bearer-token", ["profiles:read", "segments:read", "privacy:write"]
    )
    with httpx.Client(base_url=site.url, follow_redirects=False, timeout=30) as client:
        for page in PAGES:
            for headers in (
                {"Authorization": f"Bearer {token}"},
                {"Authorization": f"Bearer {key}"},
            ):
                answer = client.get(page, headers=headers)
                assert answer.status_code == 303, page
                assert answer.headers["location"].startswith("/console/login"), page
            answer = client.get(page, auth=(key, ""))
            assert answer.status_code == 303
            assert answer.headers["location"].startswith("/console/login")
        answer = client.post(
            "/console/admin/sources",
            data={"name": "by-bearer"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 303
    assert "by-bearer" not in [s.name for s in SourceRegistry(site.settings.data_dir).list()]


def track(url: str, key: str) -> int:
    event = {"type": "track", "event": "Console Key Tried", "anonymousId": "console-anon-1"}
    return httpx.post(f"{url}/v1/track", json=event, auth=(key, ""), timeout=30).status_code


def test_a_source_added_here_shows_its_key_once_and_the_collector_takes_it(
    site: Site, admin: SignedIn
) -> None:
    answer = post(
        admin, "/console/admin/sources", name="shop-web", origins="https://shop.example.jp"
    )
    assert answer.status_code == 200
    key = KEY.search(answer.text)
    assert key, answer.text
    first = key.group(1)
    assert track(site.url, first) == 200
    page = admin.get(ADMIN)
    assert 'id="sources"' in page.text and 'data-source="shop-web"' in page.text
    assert "https://shop.example.jp" in page.text
    assert first not in page.text
    assert first not in audit_text(site.settings.data_dir)
    # a new key: the old one is refused at once
    rotated = post(admin, "/console/admin/sources/shop-web/rotate")
    second = KEY.search(rotated.text)
    assert second and second.group(1) != first
    assert track(site.url, first) == 401
    assert track(site.url, second.group(1)) == 200
    revoked = post(admin, "/console/admin/sources/shop-web/revoke")
    assert revoked.status_code == 303
    assert track(site.url, second.group(1)) == 401
    lines = audit.entries(site.settings.data_dir, action="source")
    mine = [(e.action, e.target) for e in lines if e.actor == "console:aiko-admin"]
    assert ("source.add", "source:shop-web") in mine
    assert ("source.rotate", "source:shop-web") in mine
    assert ("source.revoke", "source:shop-web") in mine


def test_a_malformed_name_is_refused_with_the_services_reason(admin: SignedIn) -> None:
    answer = post(admin, "/console/admin/sources", name="Not A Name")
    assert answer.status_code == 400
    assert "lower-case letters" in answer.text
    assert 'id="secret-value"' not in answer.text


def test_a_read_token_added_here_reads_and_stops_when_revoked(site: Site, admin: SignedIn) -> None:
    answer = admin.post(
        "/console/admin/tokens",
        data={
            "csrf": admin.csrf,
            "name": "crm-reader",
            "scope": ["profiles:read", "segments:read"],
        },
    )
    assert answer.status_code == 200
    token = KEY.search(answer.text)
    assert token and token.group(1).startswith("rt_")
    listed = TokenRegistry(site.settings.data_dir).list()
    assert [t.scopes for t in listed if t.name == "crm-reader"] == [
        ("profiles:read", "segments:read")
    ]
    read = httpx.get(
        f"{site.url}/v1/segments", headers={"Authorization": f"Bearer {token.group(1)}"}
    )
    assert read.status_code == 200
    assert post(admin, "/console/admin/tokens/crm-reader/revoke").status_code == 303
    again = httpx.get(
        f"{site.url}/v1/segments", headers={"Authorization": f"Bearer {token.group(1)}"}
    )
    assert again.status_code == 401
    assert token.group(1) not in audit_text(site.settings.data_dir)


def test_users_added_re_roled_unlocked_and_removed_here(site: Site, admin: SignedIn) -> None:
    password = "a new password 1"
    added = post(admin, "/console/admin/users", name="ken-new", role="marketer", password=password)
    assert added.status_code == 303
    assert 'data-user="ken-new"' in admin.get(ADMIN).text
    ken = site.sign_in("ken-new", password, "/console/audiences")
    assert ken.get("/console/audiences").status_code == 200
    assert post(admin, "/console/admin/users/ken-new/role", role="viewer").status_code == 303
    assert UserStore(site.settings.data_dir).get("ken-new").role == "viewer"  # type: ignore[union-attr]
    assert post(ken, "/console/audiences/export", segment="x").status_code == 403
    # locked after repeated failures; the admin lifts it
    with httpx.Client(base_url=site.url, timeout=30) as stranger:
        for _ in range(5):
            form = stranger.get("/console/login")
            token = CSRF.search(form.text)
            assert token
            stranger.post(
                "/console/login",
                data={"csrf": token.group(1), "user": "ken-new", "password": "wrong password"},
            )
    assert UserStore(site.settings.data_dir).get("ken-new").locked_until  # type: ignore[union-attr]
    assert post(admin, "/console/admin/users/ken-new/unlock").status_code == 303
    assert UserStore(site.settings.data_dir).get("ken-new").locked_until is None  # type: ignore[union-attr]
    # removed: gone, and the session they had ends
    assert post(admin, "/console/admin/users/ken-new/remove").status_code == 303
    assert UserStore(site.settings.data_dir).get("ken-new") is None
    ended = ken.get("/console/audiences")
    assert ended.status_code == 303 and ended.headers["location"].startswith("/console/login")
    ken.close()
    actions = [
        (e.action, e.target)
        for e in audit.entries(site.settings.data_dir, action="user")
        if e.actor == "console:aiko-admin"
    ]
    for action in ("user.add", "user.role", "user.unlock", "user.remove"):
        assert (action, "user:ken-new") in actions
    assert password not in audit_text(site.settings.data_dir)


def test_an_admin_cannot_remove_or_demote_themselves(site: Site, admin: SignedIn) -> None:
    name = PASSWORDS["admin"][0]
    assert post(admin, f"/console/admin/users/{name}/remove").status_code == 400
    assert post(admin, f"/console/admin/users/{name}/role", role="viewer").status_code == 400
    assert UserStore(site.settings.data_dir).get(name).role == "admin"  # type: ignore[union-attr]


def test_privacy_requests_filed_here_as_the_api_files_them(site: Site, admin: SignedIn) -> None:
    email = "email:hanako.console@example.jp"
    suppressed = post(admin, "/console/admin/privacy", type="suppress", identifier=email)
    assert suppressed.status_code == 303
    assert SuppressionList.load(site.settings.data_dir).suppressed([email])
    erased = post(admin, "/console/admin/privacy", type="delete", identifier=email)
    assert erased.status_code == 303
    bad = post(admin, "/console/admin/privacy", type="delete", identifier="nonsense")
    assert bad.status_code == 400
    token = TokenRegistry(site.settings.data_dir).add("privacy-check", ["privacy:write"])
    listed = httpx.get(
        f"{site.url}/v1/privacy/requests", headers={"Authorization": f"Bearer {token}"}
    ).json()
    mine = {r["type"]: r for r in listed if r["actor"] == "console:aiko-admin"}
    assert mine["suppress"]["status"] == "finished"
    assert mine["delete"]["status"] == "received"  # embedded: waits for the directory
    page = admin.get(ADMIN).text
    for request in mine.values():
        assert f'data-request="{request["id"]}"' in page
    assert "hanako.console" not in page
    assert "hanako.console" not in audit_text(site.settings.data_dir)
    filed = audit.entries(site.settings.data_dir, action="privacy.request")
    assert {e.target for e in filed} >= {f"request:{r['id']}" for r in mine.values()}


def test_the_audit_tail_shows_the_newest_lines_filtered_by_action(admin: SignedIn) -> None:
    post(admin, "/console/admin/sources", name="tail-probe")
    page = admin.get(ADMIN)
    assert 'id="audit"' in page.text
    rows = re.findall(r'<td class="action">([^<]+)</td>', page.text)
    assert rows and rows[0] == "source.add"
    only = admin.get(ADMIN, params={"action": "source"}).text
    actions = re.findall(r'<td class="action">([^<]+)</td>', only)
    assert actions and all(a.startswith("source.") for a in actions)


def test_the_page_speaks_japanese_when_asked(admin: SignedIn) -> None:
    page = admin.get(ADMIN, headers={"Accept-Language": "ja,en;q=0.5"})
    assert page.status_code == 200
    assert "ソースと書き込みキー" in page.text and "監査ログ" in page.text
    for form in ("add-source", "add-token", "add-user", "new-privacy-request"):
        assert '<form method="post" action="/console/admin' in page.text
        assert f'id="{form}"' in page.text
    for table in ("sources", "users", "audit"):
        assert f'<table id="{table}">' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]

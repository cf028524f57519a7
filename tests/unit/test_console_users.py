"""Console users and sessions: Argon2id hashes, roles, lock-out, session ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from argon2 import PasswordHasher

from cdp.console import i18n
from cdp.console.sessions import SessionStore
from cdp.errors import AuthError, ConfigError, NotFoundError
from cdp.services.users import LOCK_SECONDS, MAX_FAILURES, UserStore

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PASSWORD = "a long enough password"
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
"""Argon2id with tiny parameters: the rules under test do not depend on the cost."""


@pytest.fixture
def users(tmp_path: Path) -> UserStore:
    return UserStore(tmp_path, CHEAP)


def test_a_password_is_stored_only_as_an_argon2id_hash(tmp_path: Path) -> None:
    users = UserStore(tmp_path)  # the production parameters
    users.add("hanako", "marketer", PASSWORD, now=T0)
    stored = (tmp_path / "console" / "users.json").read_bytes()
    assert PASSWORD.encode() not in stored
    (user,) = orjson.loads(stored)["users"]
    assert user["password_hash"].startswith("$argon2id$")
    assert "m=65536" in user["password_hash"]  # memory-hard: 64 MiB
    assert (tmp_path / "console" / "users.json").stat().st_mode & 0o777 == 0o600
    assert users.authenticate("hanako", PASSWORD, now=T0).role == "marketer"


def test_roles_include_the_ones_below(users: UserStore) -> None:
    admin = users.add("a", "admin", PASSWORD)
    viewer = users.add("v", "viewer", PASSWORD)
    assert admin.may("viewer") and admin.may("marketer") and admin.may("admin")
    assert viewer.may("viewer") and not viewer.may("marketer")


@pytest.mark.parametrize(
    ("name", "role", "password", "says"),
    [
        ("Hanako", "viewer", PASSWORD, "lower-case"),
        ("hanako", "owner", PASSWORD, "unknown role 'owner'"),
        ("hanako", "viewer", "short", "at least 10"),
    ],
)
def test_bad_users_are_refused_naming_why(
    users: UserStore, name: str, role: str, password: str, says: str
) -> None:
    with pytest.raises(ConfigError, match=says):
        users.add(name, role, password)
    assert users.list() == []


def test_a_taken_name_and_an_unknown_user_are_errors(users: UserStore) -> None:
    users.add("hanako", "viewer", PASSWORD)
    with pytest.raises(ConfigError, match="already exists"):
        users.add("hanako", "admin", PASSWORD)
    with pytest.raises(NotFoundError, match="no console user 'taro'"):
        users.remove("taro")
    with pytest.raises(AuthError, match="wrong user name or password"):
        users.authenticate("taro", PASSWORD)


def test_repeated_failures_lock_the_user_even_against_the_right_password(
    users: UserStore,
) -> None:
    users.add("hanako", "viewer", PASSWORD)
    for attempt in range(MAX_FAILURES):
        with pytest.raises(AuthError, match="wrong user name or password"):
            users.authenticate("hanako", f"wrong {attempt}", now=T0)
    with pytest.raises(AuthError, match="locked"):
        users.authenticate("hanako", PASSWORD, now=T0 + timedelta(seconds=1))
    # After the lock-out period the right password works again...
    later = T0 + timedelta(seconds=LOCK_SECONDS + 1)
    assert users.authenticate("hanako", PASSWORD, now=later).failures == 0
    # ...and an admin can lift a lock at once.
    for attempt in range(MAX_FAILURES):
        with pytest.raises(AuthError):
            users.authenticate("hanako", f"wrong {attempt}", now=later)
    users.unlock("hanako")
    assert users.authenticate("hanako", PASSWORD, now=later).name == "hanako"


def test_a_success_resets_the_failure_count(users: UserStore) -> None:
    users.add("hanako", "viewer", PASSWORD)
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(AuthError):
            users.authenticate("hanako", "wrong password!", now=T0)
    users.authenticate("hanako", PASSWORD, now=T0)
    with pytest.raises(AuthError, match="wrong user name"):  # not locked: the count restarted
        users.authenticate("hanako", "wrong password!", now=T0)


def test_another_process_s_changes_are_seen(tmp_path: Path) -> None:
    server, cli = UserStore(tmp_path, CHEAP), UserStore(tmp_path, CHEAP)
    cli.add("hanako", "viewer", PASSWORD)
    assert server.get("hanako") is not None
    cli.set_role("hanako", "admin")
    user = server.get("hanako")
    assert user is not None and user.role == "admin"
    cli.remove("hanako")
    assert server.get("hanako") is None


def test_sessions_end_when_idle_too_long_too_old_signed_out_or_the_user_goes(
    tmp_path: Path,
) -> None:
    store = SessionStore(tmp_path, idle=60, absolute=600)
    token = store.start("hanako", now=1000.0)
    session = store.get(token, now=1031.0)
    assert session is not None and session.user == "hanako"
    assert (
        session.csrf_ok(session.csrf)
        and not session.csrf_ok("forged")
        and not session.csrf_ok(None)
    )
    assert store.get(token, now=1090.0) is not None  # used at 1031 (noted if 30 s old)...
    assert store.get(token, now=1200.0) is None  # ...idle more than 60 s: ended, and stays so
    assert store.get(token, now=1201.0) is None
    old = store.start("hanako", now=2000.0)
    for at in range(2050, 2600, 50):
        assert store.get(old, now=float(at)) is not None
    assert store.get(old, now=2650.0) is None  # over the absolute 600 s
    out = store.start("hanako", now=3000.0)
    store.end(out)
    assert store.get(out, now=3001.0) is None
    a, b = store.start("hanako", now=4000.0), store.start("taro", now=4000.0)
    assert store.end_user("hanako") >= 1
    assert store.get(a, now=4001.0) is None and store.get(b, now=4001.0) is not None
    assert store.get("not a token", now=4001.0) is None and store.get(None) is None


def test_only_hashes_of_session_tokens_are_stored(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    token = store.start("hanako")
    store.close()
    assert token.encode() not in (tmp_path / "console" / "sessions.sqlite").read_bytes()


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        ("ja,en-US;q=0.9,en;q=0.8", "ja"),
        ("en-US,en;q=0.9,ja;q=0.8", "en"),
        ("ja-JP", "ja"),
        ("fr-FR,fr;q=0.9,ja;q=0.5", "ja"),
        ("fr-FR", "en"),
        ("", "en"),
        ("en;q=0.2, ja;q=0.8", "ja"),
        ("ja;q=oops, en", "en"),
    ],
)
def test_japanese_when_the_browser_prefers_it(header: str, lang: str) -> None:
    assert i18n.preferred(header) == lang


def test_every_text_has_both_languages() -> None:
    for key in i18n.registered():
        english, japanese = i18n.text(key, "en"), i18n.text(key, "ja")
        assert english.strip() and japanese.strip(), key
    with pytest.raises(KeyError, match="not registered"):
        i18n.text("no.such.key", "en")


def test_a_hash_made_with_weaker_parameters_is_renewed_at_the_next_sign_in(
    tmp_path: Path,
) -> None:
    UserStore(tmp_path, CHEAP).add("hanako", "viewer", PASSWORD)
    stronger = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    renewed = UserStore(tmp_path, stronger).authenticate("hanako", PASSWORD)
    assert "m=2048,t=2" in renewed.password_hash
    assert UserStore(tmp_path, stronger).authenticate("hanako", PASSWORD).name == "hanako"

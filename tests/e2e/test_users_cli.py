"""``cdp users`` as an operator uses it, and the console of a real ``cdp serve``
process seeing the changes without a restart."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from cdp.cli import app
from tests.loopback import cdp_serve

pytestmark = pytest.mark.e2e

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def run(data_dir: Path, *args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(app, ["--data-dir", str(data_dir), *args], input=stdin)


def cli(data_dir: Path, *args: str, stdin: str | None = None) -> Any:
    result = run(data_dir, "--json", *args, stdin=stdin)
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout) if result.stdout.strip().startswith(("{", "[")) else None


def test_users_add_list_role_password_unlock_remove(tmp_path: Path) -> None:
    made = cli(tmp_path, "users", "add", "hanako", "--role", "admin", "--password-stdin",
               stdin="hanako's password\n")  # fmt: skip
    assert made == {"name": "hanako", "role": "admin"}
    assert "hanako's password" not in (tmp_path / "console" / "users.json").read_text()
    # Asked twice on a terminal; the two must match.
    prompted = run(tmp_path, "users", "add", "taro", "--role", "viewer",
                   stdin="taro password 1\ntaro password 1\n")  # fmt: skip
    assert prompted.exit_code == 0, prompted.output
    listed = cli(tmp_path, "users", "list")
    assert [(u["name"], u["role"]) for u in listed] == [("hanako", "admin"), ("taro", "viewer")]
    cli(tmp_path, "users", "role", "taro", "--role", "marketer")
    assert cli(tmp_path, "users", "list")[1]["role"] == "marketer"
    run(tmp_path, "users", "password", "taro", "--password-stdin", stdin="a new password 2\n")
    cli(tmp_path, "users", "unlock", "taro")
    cli(tmp_path, "users", "remove", "taro")
    assert [u["name"] for u in cli(tmp_path, "users", "list")] == ["hanako"]
    # Every change is in the audit log, without the password.
    audit = "".join(p.read_text() for p in (tmp_path / "privacy" / "audit").glob("*.jsonl"))
    for action in ("user.add", "user.role", "user.password", "user.unlock", "user.remove"):
        assert action in audit
    assert "password 1" not in audit and "password 2" not in audit


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("users", "add", "hanako", "--role", "owner", "--password-stdin"), "unknown role 'owner'"),
        (("users", "add", "Hanako!", "--password-stdin"), "lower-case letters"),
        (("users", "add", "hanako", "--password-stdin"), "at least 10 characters"),
        (("users", "remove", "nobody"), "no console user 'nobody'"),
    ],
)
def test_mistakes_are_one_line_naming_what(
    tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    result = run(tmp_path, *args, stdin="short\n")
    assert result.exit_code == 2, result.output
    assert says in result.output and "Traceback" not in result.output


def sign_in(client: httpx.Client, name: str, password: str) -> httpx.Response:
    token = CSRF.search(client.get("/console/login").text)
    assert token
    return client.post(
        "/console/login", data={"csrf": token.group(1), "user": name, "password": password}
    )


def test_a_running_server_sees_users_added_and_removed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with cdp_serve(data) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        assert "cdp users add NAME --role admin" in client.get("/console/login").text
        cli(data, "users", "add", "hanako", "--role", "viewer", "--password-stdin",
            stdin="hanako password 1\n")  # fmt: skip
        answer = sign_in(client, "hanako", "hanako password 1")
        assert answer.status_code == 303
        assert client.get("/console/", follow_redirects=False).status_code == 200
        cli(data, "users", "password", "hanako", "--password-stdin", stdin="hanako password 2\n")
        ended = client.get("/console/", follow_redirects=False)  # new password: sessions end
        assert ended.status_code == 303
        assert sign_in(client, "hanako", "hanako password 1").status_code == 401
        assert sign_in(client, "hanako", "hanako password 2").status_code == 303
        cli(data, "users", "remove", "hanako")
        assert client.get("/console/", follow_redirects=False).status_code == 303

"""``cdp privacy erase`` end to end with an audience pushed to a platform (the Meta
fake on loopback): the platform is sent the removal, the sync state, the data
directory and every file in it hold nothing of the person afterwards (plain,
normalised or SHA-256), the APPI records keep only ``erased:<request>``, the
audit log has the request, and the other customers are still in the audience."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from cdp.cli import app
from cdp.config import Settings
from cdp.runtime.engine import Engine
from cdp.services.privacy import audit, files, provisions
from connectors.destinations.push.audience_sync import sync
from connectors.destinations.push.http import RetryPolicy
from tests.fakes.audience import SEGMENT, Shop
from tests.fakes.harness import running

pytestmark = pytest.mark.integration
FAST = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01)


def forms(*values: str) -> set[bytes]:
    out: set[bytes] = set()
    for value in values:
        for form in {value, value.lower(), value.strip(), value.strip().lower()}:
            out |= {form.encode(), hashlib.sha256(form.encode()).hexdigest().encode()}
    return out


def found(root: Path, marks: set[bytes]) -> list[str]:
    return [
        f"{p.relative_to(root)}: {m[:30]!r}"
        for p in sorted(root.rglob("*"))
        if p.is_file()
        for m in marks
        if m in p.read_bytes()
    ]


def test_erasure_reaches_the_pushed_audience_and_leaves_a_redacted_record(
    settings: Settings,
) -> None:
    data = settings.data_dir
    with running("meta", data) as harness:
        destination = harness.configure()
        shop = Shop(settings)
        users = shop.add(4)
        pushed = sync(
            lambda: Engine.open_read_only(settings),
            None,
            destination,
            SEGMENT,
            data_dir=data,
            policy=FAST,
        )
        assert pushed.adds == 4
        gone = users[1]
        person = shop.customers[gone]
        customer = shop.customer_ids()[gone]
        number = int(gone.rpartition("-")[2])
        phone_raw = f"090-{number // 10000:04d}-{number % 10000:04d}"
        marks = forms(
            person["email"], f"Customer.{number}@Example.JP", person["line"], gone, customer
        ) | {phone_raw.encode()}
        assert found(data, marks), "the scan must find them before"
        before = len(harness.fake.log)

        result = CliRunner().invoke(
            app, ["--data-dir", str(data), "--json", "privacy", "erase", f"email:{person['email']}"]
        )

        assert result.exit_code == 0, result.output
        [request] = orjson.loads(result.stdout)
        assert request["status"] == "finished" and request["failed"] == {}
        sent = harness.fake.requests()[before:]
        assert any(r.method == "DELETE" and r.path.endswith("/users") for r in sent)
        shop.customers.pop(gone)
        assert harness.actual() == harness.expected(shop)  # the others stay in the audience

    assert found(data, marks) == []
    token = provisions.customer_token(files.pepper(data), customer)
    records = provisions.read(data)
    assert records and all(token not in r.people and token not in r.removed for r in records)
    assert any(f"erased:{request['id']}" in (*r.people, *r.removed) for r in records)
    actions = [e.action for e in audit.entries(data)]
    assert "privacy.suppress-with-delete" in actions

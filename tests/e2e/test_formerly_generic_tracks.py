"""A data directory written by a release before the sales events were typed keeps
working: its shop's own tracks under those names (say a "Deal Updated" without
``deal_id``, which the typed contract refuses) replay and answer lookups
(``schemas.events.FORMERLY_GENERIC``); before, every replay and lookup stopped at
that event."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from cdp.cli import app
from cdp.config import Settings
from cdp.ports.log import Record
from cdp.runtime.engine import Engine
from schemas.envelope import Track

pytestmark = pytest.mark.e2e

OLD = {
    "type": "track",
    "event": "Deal Updated",
    "userId": "u-1",
    "messageId": "m-old",
    "timestamp": "2026-01-01T09:00:00Z",
    "receivedAt": "2026-01-01T09:00:01Z",
    "properties": {"note": "called back"},
}


def test_a_generic_track_stored_under_a_sales_name_replays_and_is_looked_up(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    with Engine.open(Settings(data_dir)) as engine:
        # Stored as that release stored it: a generic track, its exact bytes.
        engine.log.append([Record(Track.model_validate(OLD), orjson.dumps(OLD), "crm")])
        engine.checkpoint()
    runner = CliRunner()
    replayed = runner.invoke(app, ["--data-dir", str(data_dir), "replay"])
    assert replayed.exit_code == 0, replayed.output
    looked_up = runner.invoke(
        app, ["--data-dir", str(data_dir), "--json", "profile", "user_id:u-1"]
    )
    assert looked_up.exit_code == 0, looked_up.output
    answer = orjson.loads(looked_up.stdout)
    assert answer["matched"] == "user_id:u-1"
    assert answer["profile"]["deals_count"] == 0  # no deal: it was never a sales event

"""``audit_tail.tail``: the newest audit lines read from the end, equal to the
end of ``audit.entries`` (which reads whole files), across blocks and day files,
with a filter, and within its read budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdp.services.privacy import audit, audit_tail

pytestmark = pytest.mark.integration


def fill(data_dir: Path, lines: int) -> None:
    log = audit.AuditLog(data_dir)
    for n in range(lines):
        action = "token.add" if n % 7 == 0 else "profile.lookup"
        log.record("crm", action, f"token:t{n}", {"n": n, "pad": "x" * (n % 50)})
    log.close()


def test_the_tail_is_the_end_of_the_log_newest_first(tmp_path: Path) -> None:
    fill(tmp_path, 3000)  # ~300 KB: several read blocks, lines cut across blocks
    everything = audit.entries(tmp_path)
    assert len(everything) == 3000
    for limit in (1, 10, 999, 3000, 5000):
        assert audit_tail.tail(tmp_path, limit) == list(reversed(everything))[:limit]
    tokens = [e for e in everything if e.action.startswith("token")]
    assert audit_tail.tail(tmp_path, 50, "token") == list(reversed(tokens))[:50]
    assert audit_tail.tail(tmp_path, 50, "tok") == []  # a family, not a prefix of letters
    both = audit_tail.tail(tmp_path, 20, ("token.add", "profile"))
    assert both == list(reversed(everything))[:20]


def test_the_tail_crosses_day_files_and_stops_at_its_budget(tmp_path: Path) -> None:
    fill(tmp_path, 2000)  # ~450 KB
    [today] = sorted(audit.directory(tmp_path).glob("*.jsonl"))
    earlier = today.with_name("2020-01-01.jsonl")
    today.rename(earlier)  # yesterday's file, as far as the tail can tell
    fill(tmp_path, 5)
    newest = audit_tail.tail(tmp_path, 10)
    assert [e.details["n"] for e in newest] == [4, 3, 2, 1, 0, 1999, 1998, 1997, 1996, 1995]
    few = audit_tail.tail(tmp_path, 1000, budget=2 * audit_tail.BLOCK)
    assert 5 < len(few) < 2005
    assert few == audit_tail.tail(tmp_path, 1000)[: len(few)]

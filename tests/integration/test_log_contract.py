"""The contract of the ``EventLog`` port, and the embedded DuckDB adapter held to it.

``EventLogContract`` says what every adapter must do, through the port only:
dense offsets in append order, dedup by ``messageId`` (returning the first
copy's offset), bounded and batched reads, atomic and durable appends. An
adapter's test class subclasses it and supplies the four hooks (how to open,
reopen, break and count beneath the log); the Kafka adapter will subclass the
same base. Adapter-specific tests (hash collisions of the DuckDB index, a real
constraint failure) live in the adapter's own class.
"""

from __future__ import annotations

import abc
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cdp.adapters.duckdb import log as duckdb_log
from cdp.adapters.duckdb.log import EVENT_LOG_DDL, DuckDBEventLog
from cdp.ports.log import EventLog, Record, StoredEvent
from cdp.services.ingest import to_record
from tests.factories import T0, at_days, raw_identify, raw_order, raw_page, raw_track

pytestmark = pytest.mark.integration


class InjectedFault(Exception):
    """Raised by an adapter's fault hook in the middle of an append."""


def make_records(*message_ids: str, source: str | None = "contract") -> list[Record]:
    """Valid records of varied event types, one per messageId, through the ingest path."""
    builders = (
        lambda mid, n: raw_track("Button Clicked", {"n": n}, user_id=f"u{n}", message_id=mid),
        lambda mid, n: raw_identify(
            anonymous_id=f"a{n}", traits={"email": f"p{n}@example.jp"}, message_id=mid
        ),
        lambda mid, n: raw_page(f"/items/{n}", anonymous_id=f"a{n}", message_id=mid),
        lambda mid, n: raw_order(f"o{n}", 1000 + n, user_id=f"u{n}", message_id=mid),
    )
    records = []
    for n, mid in enumerate(message_ids):
        raw = builders[n % len(builders)](mid, n)
        raw["timestamp"] = at_days(n / 24).isoformat()
        records.append(to_record(raw, T0, source))
    return records


def ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i}" for i in range(count)]


def read_all(log: EventLog, **kw: Any) -> list[StoredEvent]:
    return [stored for batch in log.read(**kw) for stored in batch]


class EventLogContract(abc.ABC):
    """Behaviour every ``EventLog`` adapter must show. Subclass and fill in the hooks."""

    # ------------------------------------------------------------------ hooks
    @abc.abstractmethod
    def make_log(self, tmp_path: Path) -> EventLog:
        """A new, empty log stored under ``tmp_path``."""

    @abc.abstractmethod
    def reopen(self, log: EventLog) -> EventLog:
        """Close ``log`` the way a stopping process would and open its storage again."""

    @abc.abstractmethod
    def fail_next_append(self, log: EventLog) -> None:
        """Make the next ``append`` raise ``InjectedFault`` after part of it was written."""

    @abc.abstractmethod
    def stored_counts(self, log: EventLog) -> tuple[int, int]:
        """(records physically stored, distinct messageIds among them), counted
        beneath the port so that a duplicate the port hides would still show."""

    # --------------------------------------------------------------- fixtures
    @pytest.fixture
    def log(self, tmp_path: Path) -> Iterator[EventLog]:
        log = self.make_log(tmp_path)
        yield log
        log.close()

    # ---------------------------------------------------------------- offsets
    def test_empty_log_has_high_water_zero_and_reads_nothing(self, log: EventLog) -> None:
        assert log.high_water() == 0
        assert read_all(log) == []

    def test_offsets_are_dense_from_zero_in_append_order(self, log: EventLog) -> None:
        first = log.append(make_records(*ids("a", 3)))
        second = log.append(make_records(*ids("b", 2)))

        assert (first.offsets, second.offsets) == ((0, 1, 2), (3, 4))
        assert all(first.new) and all(second.new)
        assert [s.event.message_id for s in read_all(log)] == ids("a", 3) + ids("b", 2)

    def test_high_water_is_one_past_the_last_offset(self, log: EventLog) -> None:
        log.append(make_records(*ids("a", 4)))
        assert log.high_water() == 4
        log.append(make_records(*ids("a", 4)))  # all duplicates
        assert log.high_water() == 4
        log.append(make_records("b-0"))
        assert log.high_water() == 5

    def test_empty_append_stores_nothing(self, log: EventLog) -> None:
        log.append(make_records("a-0"))
        result = log.append([])

        assert (result.offsets, result.new) == ((), ())
        assert (result.appended, result.duplicates) == (0, 0)
        assert log.high_water() == 1

    # ------------------------------------------------------------------ dedup
    def test_duplicate_in_a_later_batch_returns_the_first_offset(self, log: EventLog) -> None:
        log.append(make_records(*ids("a", 3)))
        again = make_records("a-1", "b-0", "a-0")
        result = log.append(again)

        assert result.offsets == (1, 3, 0)
        assert result.new == (False, True, False)
        assert (result.appended, result.duplicates) == (1, 2)
        assert [(s.offset, s.event.message_id) for s in result.new_events(again)] == [(3, "b-0")]
        assert log.high_water() == 4

    def test_duplicate_within_one_batch_is_stored_once(self, log: EventLog) -> None:
        records = make_records("a-0", "a-1", "a-0", "a-2", "a-1")
        result = log.append(records)

        assert result.offsets == (0, 1, 0, 2, 1)
        assert result.new == (True, True, False, True, False)
        assert [s.event.message_id for s in read_all(log)] == ["a-0", "a-1", "a-2"]

    def test_duplicate_keeps_the_first_copy_even_if_its_content_differs(
        self, log: EventLog
    ) -> None:
        """Dedup is by messageId alone: a retry with other content does not overwrite."""
        (first,) = make_records("a-0")
        changed = to_record(raw_track("Other", user_id="someone-else", message_id="a-0"), T0, None)
        log.append([first])
        result = log.append([changed])

        assert (result.offsets, result.new) == ((0,), (False,))
        assert [s.event for s in read_all(log)] == [first.event]

    def test_no_message_id_is_ever_stored_twice(self, log: EventLog) -> None:
        log.append(make_records(*ids("a", 5)))
        log.append(make_records(*ids("a", 5), *ids("b", 5), *ids("a", 5)))
        log.append(make_records(*ids("b", 5)))

        assert self.stored_counts(log) == (10, 10)

    # ------------------------------------------------------------------- read
    def test_events_read_back_equal_the_appended_ones(self, log: EventLog) -> None:
        records = make_records(*ids("a", 8))
        log.append(records)

        stored = read_all(log)
        assert [s.offset for s in stored] == list(range(8))
        assert [s.event for s in stored] == [r.event for r in records]
        assert [type(s.event) for s in stored] == [type(r.event) for r in records]

    def test_read_respects_start_and_stop(self, log: EventLog) -> None:
        log.append(make_records(*ids("a", 10)))

        assert [s.offset for s in read_all(log, start=3, stop=7)] == [3, 4, 5, 6]
        assert [s.offset for s in read_all(log, start=8)] == [8, 9]
        assert [s.offset for s in read_all(log, stop=2)] == [0, 1]
        assert [s.offset for s in read_all(log, start=8, stop=1_000)] == [8, 9]
        assert read_all(log, start=10) == []
        assert read_all(log, start=50) == []
        assert read_all(log, start=5, stop=5) == []
        assert read_all(log, start=6, stop=2) == []

    def test_read_yields_ordered_non_empty_batches_of_at_most_batch_size(
        self, log: EventLog
    ) -> None:
        log.append(make_records(*ids("a", 7)))
        log.append(make_records(*ids("b", 4)))

        batches = list(log.read(start=1, batch_size=3))
        assert [[s.offset for s in batch] for batch in batches] == [
            [1, 2, 3],
            [4, 5, 6],
            [7, 8, 9],
            [10],
        ]
        assert [len(b) for b in log.read(batch_size=1)] == [1] * 11

    def test_read_rejects_a_batch_size_below_one(self, log: EventLog) -> None:
        """A zero batch size must fail fast, not loop forever (an alarm guards the test)."""
        log.append(make_records("a-0"))

        def timed_out(signum: int, frame: object) -> None:
            raise TimeoutError("read(batch_size=0) did not return within 1 s")

        previous = signal.signal(signal.SIGALRM, timed_out)
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        try:
            with pytest.raises(ValueError, match="batch_size"):
                next(iter(log.read(0, batch_size=0)))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    # ------------------------------------------------------------- durability
    def test_reopen_keeps_offsets_and_events(self, log: EventLog) -> None:
        records = make_records(*ids("a", 6))
        log.append(records[:4])
        log.append(records[4:])
        before = read_all(log)

        log = self.reopen(log)

        assert log.high_water() == 6
        assert read_all(log) == before
        assert log.append(make_records("b-0")).offsets == (6,)

    def test_dedup_still_holds_after_reopen(self, log: EventLog) -> None:
        log.append(make_records(*ids("a", 5)))
        log = self.reopen(log)

        result = log.append(make_records("a-3", "b-0", "a-0", "b-0"))

        assert result.offsets == (3, 5, 0, 5)
        assert result.new == (False, True, False, False)
        assert self.stored_counts(log) == (6, 6)

    # -------------------------------------------------------------- atomicity
    def test_failed_append_leaves_nothing_visible_and_can_be_retried(self, log: EventLog) -> None:
        """A batch that fails half-way leaves no trace: not in reads, not in the
        dedup index (a retry stores it), not after reopen."""
        log.append(make_records(*ids("a", 3)))
        batch = make_records("a-1", *ids("b", 5))

        self.fail_next_append(log)
        with pytest.raises(InjectedFault):
            log.append(batch)

        assert log.high_water() == 3
        assert [s.event.message_id for s in read_all(log)] == ids("a", 3)
        log = self.reopen(log)
        assert log.high_water() == 3
        assert self.stored_counts(log) == (3, 3)

        retry = log.append(batch)
        assert retry.offsets == (1, 3, 4, 5, 6, 7)
        assert retry.appended == 5

    def test_failed_append_then_retry_without_reopen(self, log: EventLog) -> None:
        """The in-process state (offsets, dedup memory) must roll back with the batch."""
        log.append(make_records("a-0"))
        batch = make_records(*ids("b", 4))

        self.fail_next_append(log)
        with pytest.raises(InjectedFault):
            log.append(batch)
        retry = log.append(batch)

        assert retry.offsets == (1, 2, 3, 4)
        assert retry.new == (True,) * 4
        assert [s.event.message_id for s in read_all(log)] == ["a-0", *ids("b", 4)]
        assert self.stored_counts(log) == (5, 5)


# ------------------------------------------------------------------ DuckDB adapter
class FaultyConnection:
    """A DuckDB connection that can be told to fail at ``COMMIT``, once.

    Everything else goes to the real connection, so the rows of the failing
    batch really are written inside the transaction before it fails: the
    adapter's rollback is what has to make them disappear.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.fail_at_commit = False

    def execute(self, query: str, parameters: Sequence[object] | None = None) -> Any:
        if self.fail_at_commit and query.strip().upper() == "COMMIT":
            self.fail_at_commit = False
            raise InjectedFault("simulated storage failure at COMMIT")
        return self.con.execute(query, parameters)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.con, name)


class TestDuckDBEventLog(EventLogContract):
    """The embedded adapter over a real DuckDB file."""

    DATABASE = "log.duckdb"

    @pytest.fixture(autouse=True)
    def _connections(self) -> Iterator[None]:
        self.opened: list[duckdb.DuckDBPyConnection] = []
        self.faulty: dict[int, FaultyConnection] = {}
        self.paths: dict[int, Path] = {}
        yield
        for con in self.opened:
            con.close()

    def _open(self, path: Path) -> DuckDBEventLog:
        con = duckdb.connect(str(path))
        self.opened.append(con)
        faulty = FaultyConnection(con)
        log = DuckDBEventLog(faulty)  # type: ignore[arg-type]  # a transparent proxy
        self.faulty[id(log)] = faulty
        self.paths[id(log)] = path
        return log

    def make_log(self, tmp_path: Path) -> EventLog:
        return self._open(tmp_path / self.DATABASE)

    def reopen(self, log: EventLog) -> EventLog:
        log.close()
        self.faulty[id(log)].con.close()
        return self._open(self.paths[id(log)])

    def fail_next_append(self, log: EventLog) -> None:
        self.faulty[id(log)].fail_at_commit = True

    def stored_counts(self, log: EventLog) -> tuple[int, int]:
        row = (
            self.faulty[id(log)]
            .con.execute("SELECT count(*), count(DISTINCT message_id) FROM event_log")
            .fetchone()
        )
        assert row is not None
        return int(row[0]), int(row[1])

    # ------------------------------------------------------- adapter specifics
    def test_constraint_failure_mid_insert_rolls_back_the_whole_batch(self, tmp_path: Path) -> None:
        """A real DuckDB error on the 4th row of a batch: the first 3 never appear."""
        path = tmp_path / self.DATABASE
        with duckdb.connect(str(path)) as con:
            poisoned = EVENT_LOG_DDL.replace(
                "message_id      VARCHAR     NOT NULL,",
                "message_id      VARCHAR     NOT NULL CHECK (message_id <> 'poison'),",
            )
            assert poisoned != EVENT_LOG_DDL
            con.execute(poisoned)
        log: EventLog = self._open(path)
        log.append(make_records("a-0"))

        with pytest.raises(duckdb.ConstraintException):
            log.append(make_records("b-0", "b-1", "b-2", "poison", "b-3"))

        assert log.high_water() == 1
        assert self.stored_counts(log) == (1, 1)
        assert log.append(make_records("b-0", "b-1")).offsets == (1, 2)
        log = self.reopen(log)
        assert [s.event.message_id for s in read_all(log)] == ["a-0", "b-0", "b-1"]

    @pytest.fixture
    def colliding_hash(self, monkeypatch: pytest.MonkeyPatch) -> set[str]:
        """Make ``message_hash`` give one value for every id in the returned set."""
        colliding: set[str] = set()
        real = duckdb_log.message_hash

        def fake(message_id: str) -> int:
            return 42 if message_id in colliding else real(message_id)

        monkeypatch.setattr(duckdb_log, "message_hash", fake)
        return colliding

    def test_hash_collision_in_one_batch_stores_both_and_dedups_each(
        self, log: EventLog, colliding_hash: set[str]
    ) -> None:
        colliding_hash.update({"c-1", "c-2", "c-3"})
        first = log.append(make_records("a-0", "c-1", "c-2", "c-1", "c-2"))

        assert first.offsets == (0, 1, 2, 1, 2)
        assert first.new == (True, True, True, False, False)

        again = log.append(make_records("c-2", "c-1", "c-3", "c-3"))
        assert again.offsets == (2, 1, 3, 3)
        assert again.new == (False, False, True, False)
        assert self.stored_counts(log) == (4, 4)

    def test_hash_collision_across_batches_and_reopen(
        self, log: EventLog, colliding_hash: set[str]
    ) -> None:
        colliding_hash.update({"c-1", "c-2", "c-3"})
        log.append(make_records("c-1"))
        assert log.append(make_records("c-2")).offsets == (1,)

        log = self.reopen(log)  # the index and its collision list are rebuilt here

        result = log.append(make_records("c-2", "c-1", "c-3", "a-0"))
        assert result.offsets == (1, 0, 2, 3)
        assert result.new == (False, False, True, True)
        assert [s.event.message_id for s in read_all(log)] == ["c-1", "c-2", "c-3", "a-0"]
        assert self.stored_counts(log) == (4, 4)

    def test_append_stores_queryable_columns(self, log: EventLog) -> None:
        """The columns beside the payload (what SQL and segments read) match the event."""
        records = make_records("a-0", "a-1", "a-2", "a-3", source="shop.jsonl")
        log.append(records)
        rows = (
            self.faulty[id(log)]
            .con.execute(
                'SELECT "offset", message_id, type, event, user_id, anonymous_id, '
                'timestamp, schema_version, source FROM event_log ORDER BY "offset"'
            )
            .fetchall()
        )

        for row, record in zip(rows, records, strict=True):
            event: Any = record.event
            assert row[1:6] == (
                event.message_id,
                event.type,
                getattr(event, "event", None),
                event.user_id,
                event.anonymous_id,
            )
            assert row[6] == event.timestamp
            assert row[7:] == (event.schema_version, "shop.jsonl")

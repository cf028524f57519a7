"""The generated shop the console's tests serve (integration and browser alike).

- :func:`make_shop`: a data directory holding a shop from the demo generator
  and one console user per role (``PASSWORDS``);
- :func:`cli_read`: the CLI's read connection to it (``bootstrap.open_read``),
  closed on exit: the tests' expected numbers come through it;
- :func:`a_not_b`: the segment the builder and segment tests both use ("bought
  A, not B within 30 days, 30 days ago at least, consented to ads"), over the
  shop's :func:`most_ordered` products.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import orjson

from cdp import bootstrap
from cdp.config import Settings
from cdp.demo.generate import GenerateConfig, iter_events
from cdp.runtime.engine import Engine
from cdp.services.ingest import ingest
from cdp.services.users import UserStore

PASSWORDS = {
    "admin": ("aiko-admin", "admin password 1"),
    "marketer": ("mika-marketer", "marketer password 1"),
    "viewer": ("yuto-viewer", "viewer password 1"),
}
"""Role → (user name, password) of the shop's console users."""


def make_shop(data_dir: Path, *, seed: int, customers: int) -> Settings:
    """Generate ``customers`` customers' events into ``data_dir`` (checkpointed)
    and add one console user per role."""
    settings = Settings(data_dir)
    events = (
        orjson.loads(orjson.dumps(e))
        for e in iter_events(GenerateConfig(seed=seed, customers=customers))
    )
    with Engine.open(settings) as engine:
        report = ingest(((f"gen:{i}", e) for i, e in enumerate(events)), engine)
        assert report.rejected == 0
    users = UserStore(settings.data_dir)
    for role, (name, password) in PASSWORDS.items():
        users.add(name, role, password)
    return settings


@contextmanager
def cli_read(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """The connection ``cdp`` commands read with (through ``cdp serve`` when a
    server process owns the directory; in the tests' own process, only before
    the app opens it: DuckDB allows no read-only connection beside a writer)."""
    con = bootstrap.open_read(settings)
    try:
        yield con
    finally:
        con.close()


def a_not_b(a: str, b: str, name: str, description: str | None = None) -> str:
    """Bought ``a``, not ``b`` within 30 days (30 days ago at least), consented to ads."""
    about = f"description: {description}\n" if description else ""
    return f"""name: {name}
{about}rules:
  all:
    - sequence:
        first: {{name: Order Completed, where: [{{property: "products[*].product_id", op: contains, value: {a}}}]}}
        not_then: {{name: Order Completed, where: [{{property: "products[*].product_id", op: contains, value: {b}}}]}}
        within_days: 30
        min_days: 30
    - trait: {{field: consent_ads, op: eq, value: true}}
"""


def most_ordered(con: duckdb.DuckDBPyConnection, n: int = 2) -> list[str]:
    """The ``n`` most ordered product ids (ties by id)."""
    rows = con.execute(
        "SELECT p FROM (SELECT unnest(product_ids) AS p FROM facts "
        "WHERE event = 'Order Completed') GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT $n",
        {"n": n},
    ).fetchall()
    return [str(r[0]) for r in rows]

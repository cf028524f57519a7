"""The SQL surface analysts and segments query (DuckDB views).

- ``events``: the whole event log, one row per event, with the customer each
  belongs to *now* (after every merge) and the JSON parts split out;
- ``facts``: one narrow row per named event (``event`` not NULL): ``offset``,
  ``event``, ``timestamp``, ``customer_id`` (attributed exactly as in
  ``events``: ``attribution``) and the order/product columns of
  ``facts.FACT_PATHS`` (``product_ids``, ``product_categories``, ``order_id``,
  ``revenue``, an email's ``campaign_id`` and ``variant``), read from the ``event_facts`` table the writer keeps at
  checkpoint, plus the log's newer events extracted on the fly;
- ``profiles``: one row per customer: the profile and lead-score summary
  columns, plus values that depend on "now", computed against the log clock
  (the latest event time) rather than the wall clock so that results are
  reproducible: ``age``, ``age_band``, ``lead_score_now``, ``hot_now``,
  ``days_since_last_order``, ``days_since_last_seen``,
  ``days_since_last_contact`` and ``contacts_7d``/``_30d``/``_90d``: the
  shop's contacts on the N UTC days ending on the log clock's UTC day
  (``projections.outbound``);
- ``identities``: identifier → customer (``kind``, ``value`` split out);
- ``merges`` and ``identity_rejections``: why customers were (not) joined;
- ``log_clock``: ``as_of``, the latest event time in the log among events
  dated at most 24 h after their receipt (``cdp.runtime.clock``), kept with
  the facts table's position, plus the log's newer events (``facts.CLOCK_SQL``).
"""

from __future__ import annotations

import duckdb

from cdp.adapters.duckdb import facts
from projections import lead_score
from projections.outbound import CONTACT_WINDOWS


def _contact_counts() -> str:
    """``contacts_Nd`` columns: sums of ``contacts_by_day`` over the N UTC days to
    the clock's UTC day (days after it, dated ahead of the clock, do not count)."""
    today = "(k.as_of AT TIME ZONE 'UTC')::DATE"
    return ",\n                  ".join(
        f"coalesce(list_sum(list_transform(list_filter(c.contacts_by_day, lambda d: "
        f"d.day > {today} - {days} AND d.day <= {today}), lambda d: d.contacts)), 0)::INTEGER "
        f"AS contacts_{days}d"
        for days in CONTACT_WINDOWS
    )


def attribution(user_key: str, anonymous_key: str) -> tuple[str, str]:
    """The one rule that gives an event its customer *now*: the customer of its
    user id, else of its anonymous id, in the identity graph. Returns the
    ``customer_id`` expression and the joins it needs (aliases ``iu``, ``ia``),
    given the SQL of the event's two identity-graph keys."""
    joins = (
        f"LEFT JOIN identity_graph iu ON iu.identifier = {user_key}\n"
        f"           LEFT JOIN identity_graph ia ON ia.identifier = {anonymous_key}"
    )
    return "coalesce(iu.customer_id, ia.customer_id)", joins


def statements(rules: lead_score.Rules) -> list[str]:
    """CREATE VIEW statements; decay and thresholds come from the scoring rules."""
    half_life = float(rules.half_life_days)
    hot = float(rules.hot_threshold)
    log_customer, log_joins = attribution(facts.user_key_sql("l"), facts.anonymous_key_sql("l"))
    fact_customer, fact_joins = attribution("f.user_key", "f.anonymous_key")
    fact_columns = ", ".join(f"f.{column}" for column, _ in facts.FACT_PATHS.values())
    return [
        # = SELECT {AS_OF_SQL} FROM event_log, from the clock saved with the facts.
        f"CREATE OR REPLACE VIEW log_clock AS {facts.CLOCK_SQL}",
        """CREATE OR REPLACE VIEW identities AS
           SELECT identifier, split_part(identifier, ':', 1) AS kind,
                  substr(identifier, strpos(identifier, ':') + 1) AS value, customer_id
           FROM identity_graph WHERE identifier <> ''""",
        f"""CREATE OR REPLACE VIEW events AS
           SELECT l."offset", l.message_id, l.type, l.event, l.timestamp, l.received_at,
                  l.user_id, l.anonymous_id,
                  {log_customer} AS customer_id,
                  l.source, l.schema_version,
                  json_extract(l.payload, '$.properties') AS properties,
                  json_extract(l.payload, '$.traits') AS traits,
                  json_extract(l.payload, '$.context') AS context,
                  l.payload
           FROM event_log l
           {log_joins}""",
        f"""CREATE OR REPLACE VIEW facts AS
           SELECT f."offset", f.event, f.timestamp, {fact_customer} AS customer_id,
                  {fact_columns}
           FROM (SELECT * FROM {facts.TABLE} UNION ALL {facts.TAIL_SQL}) f
           {fact_joins}""",
        f"""CREATE OR REPLACE VIEW profiles AS
           SELECT c.* EXCLUDE (profile_state, lead_state),
                  CASE WHEN c.birthday IS NULL THEN NULL
                       ELSE date_diff('year', c.birthday, k.as_of::DATE)
                            - CASE WHEN strftime(k.as_of::DATE, '%m%d') < strftime(c.birthday, '%m%d')
                                   THEN 1 ELSE 0 END
                  END AS age,
                  CASE WHEN c.birthday IS NULL THEN NULL
                       ELSE CAST(least(70, greatest(10, 10 * floor(
                            (date_diff('day', c.birthday, k.as_of::DATE) / 365.2425) / 10))) AS INTEGER)
                            || 's'
                  END AS age_band,
                  CASE WHEN c.score_time IS NULL THEN 0.0
                       ELSE c.lead_score * pow(0.5, greatest(0, epoch(k.as_of) - epoch(c.score_time))
                                                    / 86400.0 / {half_life})
                  END AS lead_score_now,
                  c.lifecycle_stage IN ('lead', 'hot_lead') AND c.score_time IS NOT NULL
                    AND c.lead_score * pow(0.5, greatest(0, epoch(k.as_of) - epoch(c.score_time))
                                                / 86400.0 / {half_life}) >= {hot} AS hot_now,
                  date_diff('day', c.last_order_at, k.as_of) AS days_since_last_order,
                  date_diff('day', c.last_seen, k.as_of) AS days_since_last_seen,
                  date_diff('day', c.last_contacted_at, k.as_of) AS days_since_last_contact,
                  {_contact_counts()}
           FROM customers c, log_clock k""",
    ]


def create(con: duckdb.DuckDBPyConnection, rules: lead_score.Rules) -> None:
    """(Re)create the views in the database file so read-only sessions see them,
    and the ``event_facts`` table ``facts`` reads, caught up with a stored log:
    an older data directory gets it filled on its first open for writing. Over
    a view of the log (the Parquet archive's session) it stays empty and the
    ``facts`` view reads the log itself."""
    facts.create(con)
    if facts.log_is_stored(con):
        facts.catch_up(con)
    for statement in statements(rules):
        con.execute(statement)


def catch_up(con: duckdb.DuckDBPyConnection) -> int:
    """Bring the tables behind the views up to the log: the ``event_facts`` rows
    of events past its saved position (``facts.catch_up``); the offsets read.
    The writer calls it at every checkpoint; cheap when nothing is new."""
    return facts.catch_up(con)

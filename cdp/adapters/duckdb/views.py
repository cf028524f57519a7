"""The SQL surface analysts and segments query (DuckDB views).

- ``events``: the whole event log, one row per event, with the customer each
  belongs to *now* (after every merge) and the JSON parts split out;
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
  dated at most 24 h after their receipt (``cdp.runtime.clock``).
"""

from __future__ import annotations

import duckdb

from cdp.runtime import clock as log_clock
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


def statements(rules: lead_score.Rules) -> list[str]:
    """CREATE VIEW statements; decay and thresholds come from the scoring rules."""
    half_life = float(rules.half_life_days)
    hot = float(rules.hot_threshold)
    return [
        f"CREATE OR REPLACE VIEW log_clock AS SELECT {log_clock.AS_OF_SQL} AS as_of FROM event_log",
        """CREATE OR REPLACE VIEW identities AS
           SELECT identifier, split_part(identifier, ':', 1) AS kind,
                  substr(identifier, strpos(identifier, ':') + 1) AS value, customer_id
           FROM identity_graph WHERE identifier <> ''""",
        """CREATE OR REPLACE VIEW events AS
           SELECT l."offset", l.message_id, l.type, l.event, l.timestamp, l.received_at,
                  l.user_id, l.anonymous_id,
                  coalesce(iu.customer_id, ia.customer_id) AS customer_id,
                  l.source, l.schema_version,
                  json_extract(l.payload, '$.properties') AS properties,
                  json_extract(l.payload, '$.traits') AS traits,
                  json_extract(l.payload, '$.context') AS context,
                  l.payload
           FROM event_log l
           LEFT JOIN identity_graph iu ON iu.identifier = 'user_id:' || trim(l.user_id)
           LEFT JOIN identity_graph ia ON ia.identifier = 'anonymous_id:' || trim(l.anonymous_id)""",
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
    """(Re)create the views in the database file so read-only sessions see them."""
    for statement in statements(rules):
        con.execute(statement)

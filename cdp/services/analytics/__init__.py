"""CRM analytics over the DuckDB views (MISSION items 4, 6 and 8).

Each analytic is a function of a read-only DuckDB connection and a few
options, computed in SQL in one pass, relative to the log clock
(``log_clock.as_of``), returning a ``Report`` (columns, rows, summary):

- ``rfm`` / ``rfm_scores`` / ``rfm_grid`` (``RFM_SQL`` for joins): ``cdp.services.analytics.rfm``;
- ``ltv`` and ``retention`` by acquisition cohort: ``cdp.services.analytics.cohorts``;
- ``next_purchase`` and its ``backtest``: ``cdp.services.analytics.next_purchase``;
- ``sequences`` ("buyers of X buy Y within N days") and ``sequence_gaps`` (the time to Y):
  ``cdp.services.analytics.sequences``;
- ``email_ab`` (rates per variant with a z-test): ``cdp.services.analytics.email_ab``;
- ``funnel`` (journey stages, the lifecycle and the sales ladders): ``cdp.services.analytics.funnel``;
- ``campaigns`` (marketing → sales conversion per first/last touch): ``cdp.services.analytics.sales``.

docs/analytics.md defines every measure.
"""

from cdp.services.analytics._base import DEFAULT_TZ, ORDER_LINES_SQL, ORDERS_SQL, PERIODS, Report
from cdp.services.analytics.cohorts import ltv, retention
from cdp.services.analytics.email_ab import email_ab
from cdp.services.analytics.funnel import funnel
from cdp.services.analytics.next_purchase import backtest, next_purchase
from cdp.services.analytics.rfm import RFM_SQL, rfm, rfm_grid, rfm_scores
from cdp.services.analytics.sales import campaigns
from cdp.services.analytics.sequences import sequence_gaps, sequences

__all__ = [
    "DEFAULT_TZ",
    "ORDERS_SQL",
    "ORDER_LINES_SQL",
    "PERIODS",
    "RFM_SQL",
    "Report",
    "backtest",
    "campaigns",
    "email_ab",
    "funnel",
    "ltv",
    "next_purchase",
    "retention",
    "rfm",
    "rfm_grid",
    "rfm_scores",
    "sequence_gaps",
    "sequences",
]

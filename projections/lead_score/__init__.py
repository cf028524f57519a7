"""Lead score, lifecycle stage and funnel stage of one customer: a pure fold.

The identity projection decides which events belong to a customer; this fold
turns that customer's events into:

- a **lead score**: every event scores under each rule it matches (rules are
  additive), and points decay by *event time* with a half-life, so the score is
  "how warm is this person as of their last activity" (MISSION item 5);
  activity is what the customer did: the shop's own events
  (``projections.outbound.SHOP_EVENTS``: an email delivered, a message sent,
  a refund booked) never move it and never earn points;
- a **lifecycle stage** on the ladder unknown → lead → hot_lead → customer →
  repeater (リード → ホットリード → 顧客 → リピーター, MISSION item 4);
- a **funnel stage** awareness → interest → consideration → purchase →
  retention (認知・興味・検討・購入・継続).

What earns points is set by ``Rules`` (``projections.lead_score.rules``, whose
``Rule``, ``Rules`` and ``DEFAULT_RULES`` are re-exported here). Buckets store
counts, not points, so changing a rule's points rescores every state without
a replay (see that module).

Order independence, bit for bit
    Any permutation of the same events gives an *equal* ``State``. Floats are
    never accumulated: a ``Bucket`` counts the events one rule matched on one
    UTC day (an ``int``), and the decayed score is computed on demand from the
    buckets with ``math.fsum``. Each bucket keeps the three largest
    ``(event time, messageId)`` pairs as examples, a set that does not depend
    on arrival order either. Buckets older than the horizon
    (``horizon_half_lives`` half-lives before the last activity) are dropped
    whenever a state is frozen; since the last activity only grows, a bucket
    dropped early would also be dropped at the end, and a late event for an
    already-dropped day is dropped again, so pruning never depends on order
    (``combine`` and ``apply`` follow the same rule).

Speed
    ``fold`` thaws a state into dicts once, folds a batch with a flat loop
    and freezes once; ``apply`` bisects one event into the sorted buckets.
    ``fold`` must equal ``reduce(apply)`` (property-tested; see
    ``projections.lead_score.fold``).

Not idempotent
    Duplicate deliveries count twice, like every fold here: the log
    deduplicates by ``messageId`` before folding.

Time
    Decay uses event time only; nothing reads a clock. A bucket is aged from
    its UTC midday, so an event is worth its points at noon of its day (with
    a 30-day half-life, at most 1.2 % more or less earlier or later that day).
    The score is one exponential in time: ``score_at(T + d) ==
    score_at(T) * 0.5 ** (d / half_life_days)``, so a stored score and its
    ``score_time`` give the score at any later time without the state.
    ``score_at`` for a time earlier than the last activity returns the score
    at the last activity (a fold cannot un-see events; replay up to that time
    for a true as-of).

The package: ``state`` (``State``, ``Bucket``, the signals), ``fold``
(``fold``, ``apply``, ``project``, ``combine``), ``scoring`` (the scoring
queries: ``score_at``, ``explain``, the stages, ``assess``), ``rules``
(``Rules``), ``codec`` (``to_json``/``from_json``) and ``parts`` (exact time
and order arithmetic). Importers use the names re-exported here; the
profiles-table columns are the DuckDB adapter's (``cdp.runtime.columns``).
"""

from projections.lead_score.codec import JSON_VERSION, from_json, to_json
from projections.lead_score.fold import apply, combine, fold, project
from projections.lead_score.rules import DEFAULT_RULES, Equals, Rule, Rules
from projections.lead_score.scoring import (
    Assessment,
    assess,
    explain,
    funnel_stage,
    lifecycle_stage,
    order_count,
    score_at,
)
from projections.lead_score.state import (
    CONSIDERATION_PAGE,
    EMAIL_CLICKED,
    EMAIL_OPENED,
    EXAMPLES_PER_BUCKET,
    FORM_SUBMITTED,
    FUNNEL_STAGES,
    LIFECYCLE_STAGES,
    PRODUCT_ADDED,
    PRODUCT_VIEWED,
    SIGNALS,
    SNS_MESSAGE,
    Bucket,
    State,
    initial,
)

__all__ = [
    "CONSIDERATION_PAGE",
    "DEFAULT_RULES",
    "EMAIL_CLICKED",
    "EMAIL_OPENED",
    "EXAMPLES_PER_BUCKET",
    "FORM_SUBMITTED",
    "FUNNEL_STAGES",
    "JSON_VERSION",
    "LIFECYCLE_STAGES",
    "PRODUCT_ADDED",
    "PRODUCT_VIEWED",
    "SIGNALS",
    "SNS_MESSAGE",
    "Assessment",
    "Bucket",
    "Equals",
    "Rule",
    "Rules",
    "State",
    "apply",
    "assess",
    "combine",
    "explain",
    "fold",
    "from_json",
    "funnel_stage",
    "initial",
    "lifecycle_stage",
    "order_count",
    "project",
    "score_at",
    "to_json",
]

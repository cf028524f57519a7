"""Customer profile: the one shared record of a customer, folded from their events.

The identity projection decides which events belong to which customer; this
fold turns one customer's events into everything MISSION item 1 asks a
customer record to hold: personal traits, consents, web and app behaviour,
purchases and refunds, campaign touches, email behaviour, SNS accounts,
support tickets, survey answers and groups, and the shop's contacts of them.

What the customer did and what the shop did are different facts
(``projections.outbound``): ``first_seen``/``last_seen`` move only with the
customer's own events; the shop's contacts (an email delivered, an SNS
message sent, a push received) set ``last_contacted`` and the per-day contact
counts instead, and the shop's other records (a bounce, a refund booked) move
neither.

Order independence, by construction (see ``projections.profile.lww``): every trait
is a last-writer-wins cell keyed by event time then ``messageId``, counters
are sums (contacts per day too, pruned against the latest contact, which
only grows), sets are unions, first/last are min/max, orders are keyed by
``order_id`` (a resend replaces, never adds) and refunds by ``messageId``.
Anything derived (net revenue, orders not refunded, ...) is computed from
those when read (``kept_orders``; the ``profiles`` table row is built by the
DuckDB adapter, ``cdp.runtime.columns``) and never stored, so folding
any permutation of the same events gives an equal ``State`` and ``combine`` of
two customers equals the fold of all their events.

The package: ``state`` (``State``, ``initial``, ``kept_orders``), ``fold``
(``fold``, ``apply``, ``project``, ``combine``), ``builder`` (the mutable
working copy behind ``fold``), ``codec`` (``to_json``/``from_json``),
``parts`` (the records a state is made of) and ``lww`` (last-writer-wins
cells and merges). Importers use the names re-exported here.
"""

from projections.profile.codec import JSON_VERSION, from_json, to_json
from projections.profile.fold import apply, combine, fold, project
from projections.profile.parts import CampaignKey, Order
from projections.profile.state import State, TraitValue, initial, kept_orders

__all__ = [
    "JSON_VERSION",
    "CampaignKey",
    "Order",
    "State",
    "TraitValue",
    "apply",
    "combine",
    "fold",
    "from_json",
    "initial",
    "kept_orders",
    "project",
    "to_json",
]

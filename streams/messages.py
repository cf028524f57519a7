"""The records the agents exchange, and their byte codecs (JSON, orjson).

``cdp.events.by-customer`` (keyed by customer id) carries three kinds of
message, all produced in an order that lets the profile agent guard against
redelivery (see ``streams.profiles``):

- ``event``: one stored event of the log at ``offset``, for ``customer``
  (sent by the identity agent, in log order);
- ``merge_out``: ``customer`` was merged into ``into`` by the event at
  ``offset`` (identity agent, keyed by the loser, after all its events);
- ``absorb``: the state of ``source`` (a loser) for ``customer`` (the
  survivor) to combine, with the losers ``source`` had itself absorbed (sent
  by the profile agent that handled the ``merge_out``).

A record of that topic is a *bundle*: a JSON array of such messages, all for
customers of the record's partition, in the order they were produced
(``bundle``, ``decode_record``). One record per partition per batch instead
of one per message: on a broker that needs one record per produce batch
(tansu, docs/streams.md) every record costs a broker round trip. The
partition of a customer is Kafka's default partitioner's (murmur2 of the
customer id, ``partition_of``), so bundles land where single messages keyed
by the customer id landed before; a record holding one bare message (the
format before bundles) is still read.

The other topics carry plain JSON values, built here too so the snapshot
reader and the agents agree: identity assignment rows, merges and rejections,
dead letters, profile snapshots.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, Literal

import orjson
from aiokafka.partitioner import murmur2  # type: ignore[import-untyped]  # no type information shipped

from cdp.errors import MessageError
from projections import identity
from schemas import AnyEvent, decode_stored

Kind = Literal["event", "merge_out", "absorb"]
KINDS: Final = ("event", "merge_out", "absorb")


@dataclass(frozen=True, slots=True)
class ByCustomer:
    """One message of the by-customer topic (see the module docstring)."""

    kind: Kind
    customer: str
    offset: int = -1
    data: bytes | Mapping[str, Any] | None = None
    """``event``: the stored event's JSON bytes exactly as in the log (parsed, once decoded)."""
    into: str | None = None
    """``merge_out``: the survivor."""
    source: str | None = None
    """``absorb``: the loser whose state this is."""
    state: Mapping[str, Any] | None = None
    """``absorb``: the loser's state (``cdp.runtime.customer.to_json``), ``None`` if it had none."""
    absorbed: tuple[str, ...] = ()
    """``absorb``: losers ``source`` had absorbed itself (they must not count twice)."""

    def event(self) -> AnyEvent:
        """The carried event, decoded (``event`` messages only)."""
        if self.data is None:
            raise MessageError(f"{self.kind} message for {self.customer} carries no event")
        raw = orjson.loads(self.data) if isinstance(self.data, bytes) else dict(self.data)
        return decode_stored(raw)  # a stored event: read as the contract it was written under


def event_message(customer: str, offset: int, data: bytes | Mapping[str, Any]) -> ByCustomer:
    """An ``event`` message."""
    return ByCustomer("event", customer, offset, data=data)


def merge_out_message(loser: str, into: str, offset: int) -> ByCustomer:
    """A ``merge_out`` message, keyed by the loser."""
    return ByCustomer("merge_out", loser, offset, into=into)


def absorb_message(
    survivor: str, loser: str, state: Mapping[str, Any] | None, absorbed: tuple[str, ...]
) -> ByCustomer:
    """An ``absorb`` message, keyed by the survivor."""
    return ByCustomer("absorb", survivor, source=loser, state=state, absorbed=absorbed)


def encode(message: ByCustomer) -> bytes:
    """The message's bytes; the event bytes are embedded verbatim (no re-encoding)."""
    body: dict[str, Any] = {"kind": message.kind, "customer": message.customer}
    if message.kind == "event":
        body["offset"] = message.offset
        data = message.data
        body["event"] = orjson.Fragment(data) if isinstance(data, bytes) else data
    elif message.kind == "merge_out":
        body["offset"] = message.offset
        body["into"] = message.into
    else:
        body["source"] = message.source
        body["state"] = message.state
        body["absorbed"] = list(message.absorbed)
    return orjson.dumps(body)


@lru_cache(maxsize=65_536)
def partition_of(customer: str, partitions: int) -> int:
    """The by-customer partition of ``customer``: Kafka's default partitioner of its id."""
    return (int(murmur2(customer.encode())) & 0x7FFFFFFF) % partitions


def bundle(encoded: Iterable[bytes]) -> bytes:
    """One by-customer record holding the ``encode``d messages, in order (no re-encoding)."""
    return b"[" + b",".join(encoded) + b"]"


def bundles(encoded: Iterable[tuple[str, bytes]], partitions: int) -> dict[int, bytes]:
    """``(customer, encode(message))`` pairs as one bundle per partition, each in order."""
    grouped: dict[int, list[bytes]] = {}
    for customer, value in encoded:
        grouped.setdefault(partition_of(customer, partitions), []).append(value)
    return {p: bundle(values) for p, values in grouped.items()}


def decode_record(data: bytes) -> list[ByCustomer]:
    """The messages of a by-customer record (a bundle, or one bare message);
    ``MessageError`` if any of them is unreadable."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise MessageError(f"unreadable by-customer message: {error}") from None
    if isinstance(body, list):
        return [_message(item) for item in body]
    return [_message(body)]


def decode_message(data: bytes) -> ByCustomer:
    """Inverse of ``encode``; ``MessageError`` for anything else."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise MessageError(f"unreadable by-customer message: {error}") from None
    return _message(body)


def _message(body: Any) -> ByCustomer:
    kind: Any = None
    try:
        kind = body["kind"]
        customer = body["customer"]
        if kind == "event":
            if not isinstance(body["event"], dict):
                raise MessageError(f"event message for {customer} carries no event object")
            return ByCustomer("event", customer, int(body["offset"]), data=body["event"])
        if kind == "merge_out":
            return ByCustomer("merge_out", customer, int(body["offset"]), into=str(body["into"]))
        if kind == "absorb":
            return ByCustomer(
                "absorb",
                customer,
                source=str(body["source"]),
                state=body["state"],
                absorbed=tuple(body["absorbed"]),
            )
    except (KeyError, TypeError, ValueError) as error:
        raise MessageError(f"unreadable by-customer message: {error}") from None
    raise MessageError(f"unknown by-customer message kind {kind!r}")


# ── other topics ───────────────────────────────────────────────────────────


def assignment_key(row: identity.Row) -> bytes:
    """Compaction key of an identity row: the identifier, or ``@customer`` for a merged-away one."""
    identifier, customer, _, _ = row
    return (identifier or "@" + customer).encode()


def assignment_value(row: identity.Row) -> bytes:
    """An identity row (``identity.ROW_COLUMNS``) as a JSON object."""
    return orjson.dumps(dict(zip(identity.ROW_COLUMNS, row, strict=True)))


def assignment_row(value: bytes) -> identity.Row:
    """Inverse of ``assignment_value``."""
    body = orjson.loads(value)
    return (
        str(body["identifier"]),
        str(body["customer_id"]),
        int(body["seq"]),
        str(body["merged_into"]),
    )


def merge_value(merge: identity.Merge) -> bytes:
    """A merge, explainable: who into whom, via which identifier, which event."""
    return orjson.dumps(
        {
            "kind": "merge",
            "from_customer": merge.from_customer,
            "into_customer": merge.into_customer,
            "via": merge.via,
            "reason": merge.reason,
            "message_id": merge.message_id,
            "offset": merge.offset,
            "at": merge.at,
        }
    )


def rejection_value(rejection: identity.Rejection) -> bytes:
    """A link the identity rules refused."""
    return orjson.dumps(
        {
            "kind": "rejection",
            "customer_id": rejection.customer_id,
            "identifier": rejection.identifier,
            "reason": rejection.reason,
            "message_id": rejection.message_id,
            "offset": rejection.offset,
            "at": rejection.at,
        }
    )


def _default(value: object) -> object:
    return str(value)  # Decimal: exact, as text


def profile_value(row: Mapping[str, Any]) -> bytes:
    """A profile snapshot (``cdp.runtime.customer.customer_row``) as JSON; dates ISO, money as text."""
    return orjson.dumps(row, default=_default)

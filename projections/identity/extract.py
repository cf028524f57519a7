"""Which identifiers an event carries: ``identifiers_of``.

An identifier key is ``kind:value`` (see ``schemas.identifiers``), its value
normalised; junk values are dropped there, so they never link anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from schemas.context import Traits
from schemas.crm import FormSubmitted, MessageReceived, MessageSent
from schemas.envelope import Alias, Identify
from schemas.events import GENERIC_MODELS, TYPED_EVENT_NAMES, AnyEvent
from schemas.identifiers import normalise

USER_KEY: Final = "user_id:"
"""Prefix of a user id key."""
ANON_KEY: Final = "anonymous_id:"
"""Prefix of an anonymous id key."""
_CHANNEL_TRAITS: Final = (
    ("line", "line_user_id"),
    ("x", "x_user_id"),
    ("instagram", "instagram_user_id"),
)
_NONE: Final[tuple[()]] = ()
_LINKING: Final[frozenset[type]] = frozenset(
    {Identify, Alias, FormSubmitted, MessageReceived, MessageSent}
)
LINKING_TAGS: Final[frozenset[str]] = frozenset(
    tag for tag, model in {**GENERIC_MODELS, **TYPED_EVENT_NAMES}.items() if model in _LINKING
)
"""Union tags of the event types that may link identifiers beyond the envelope's."""


def _add(keys: list[str], kind: str, value: object) -> None:
    if value is not None:
        normal = normalise(kind, value)
        if normal is not None:
            k = f"{kind}:{normal}"  # schemas.identifiers.key, inlined: hot path
            if k not in keys:
                keys.append(k)


def identifiers_of(event: AnyEvent, known: Callable[[str], bool] | None = None) -> tuple[str, ...]:
    """The usable identifier keys ``event`` carries, deduplicated, in priority order.

    Priority: user_id, email, phone, line, x, instagram, anonymous_id. Sources
    are ``userId``/``anonymousId``, identify traits and ``context.traits``
    (email, phone, ``line_user_id``/``x_user_id``/``instagram_user_id``), the
    channel user of Message Received/Sent, and email/phone fields of Form
    Submitted. An alias's ``previousId`` is a user id when ``known`` says the
    graph knows ``user_id:<previousId>``, else an anonymous id (Segment's usual
    case). Junk values are dropped. Group traits describe the group, not the
    person, and are ignored.
    """
    # Most events (track, page, screen, ...) carry only the envelope's ids: a
    # short path for them keeps apply() cheap.
    if carries_envelope_only(event):
        return envelope_keys(event.user_id, event.anonymous_id)
    return _linking_identifiers(event, known)


def carries_envelope_only(event: AnyEvent) -> bool:
    """Whether ``event`` names nobody beyond its envelope's ``userId`` and
    ``anonymousId``: then ``identifiers_of`` and ``every_identifier_of`` are
    ``envelope_keys(event.user_id, event.anonymous_id)``."""
    # Exact types: no subclasses exist.
    return event.context.traits is None and type(event) not in _LINKING


def envelope_keys(user_id: str | None, anonymous_id: str | None) -> tuple[str, ...]:
    """The identifier keys of an event that carries only its envelope's ids."""
    user = None if user_id is None else normalise("user_id", user_id)
    anonymous = None if anonymous_id is None else normalise("anonymous_id", anonymous_id)
    if user is None:
        return _NONE if anonymous is None else (ANON_KEY + anonymous,)
    return (USER_KEY + user,) if anonymous is None else (USER_KEY + user, ANON_KEY + anonymous)


def envelope_only(tag: str, has_context_traits: bool) -> bool:
    """Whether an event of union tag ``tag`` (``schemas.events.tag_of``) links
    only its envelope's ids: then ``identifiers_of`` is ``envelope_keys``."""
    return not has_context_traits and tag not in LINKING_TAGS


def _linking_identifiers(event: AnyEvent, known: Callable[[str], bool] | None) -> tuple[str, ...]:
    keys: list[str] = []
    _add(keys, "user_id", event.user_id)
    previous: str | None = None
    if isinstance(event, Alias):
        previous = normalise("user_id", event.previous_id)
        if previous is not None and keys and keys[0] == USER_KEY + previous:
            previous = None  # an alias of itself links nothing
        elif previous is not None and known is not None and known(USER_KEY + previous):
            _add(keys, "user_id", previous)
            previous = None
    traits: tuple[Traits, ...] = ()
    if isinstance(event, Identify):
        traits = (event.traits,)
    context_traits = event.context.traits
    if context_traits is not None:
        traits = (*traits, context_traits)
    form = event.properties.fields if isinstance(event, FormSubmitted) else None
    for t in traits:
        _add(keys, "email", t.email)
    if form:
        _add(keys, "email", form.get("email"))
    for t in traits:
        _add(keys, "phone", t.phone)
    if form:
        _add(keys, "phone", form.get("phone"))
    channel = event.properties if isinstance(event, MessageReceived | MessageSent) else None
    extras = [t.model_extra for t in traits if t.model_extra]
    if extras:
        for kind, trait in _CHANNEL_TRAITS:
            if channel is not None and channel.channel == kind:
                _add(keys, kind, channel.channel_user_id)
            for extra in extras:
                _add(keys, kind, extra.get(trait))
    elif channel is not None:
        _add(keys, channel.channel, channel.channel_user_id)
    if previous is not None:
        _add(keys, "anonymous_id", previous)
    _add(keys, "anonymous_id", event.anonymous_id)
    return tuple(keys)


def every_identifier_of(event: AnyEvent) -> tuple[str, ...]:
    """Every identifier key ``event`` may name, whatever the graph knows: for an
    alias, both readings of its ``previousId`` (user id and anonymous id).

    For the doors and the sealed log, which do not read the graph: the
    suppression check and the keys an event is sealed under."""
    keys = identifiers_of(event)
    if isinstance(event, Alias):
        return tuple(dict.fromkeys((*keys, *identifiers_of(event, known=lambda _: True))))
    return keys

"""What the text of a lookup names: an identifier key or a ``cus_`` customer id.

Shared by every ``ProfileLookups`` implementation, so ``email:Hanako@Example.JP``
finds the same customer in every mode.
"""

from __future__ import annotations

from schemas.identifiers import key, parse_key

CUSTOMER_PREFIX = "cus_"


def parse(text: str) -> str:
    """The identifier key (``kind:normalised value``) or ``cus_`` id ``text`` names.

    ``ValueError`` naming the problem when it is malformed (unknown kind,
    missing or unusable value).
    """
    if text.startswith(CUSTOMER_PREFIX):
        if len(text) == len(CUSTOMER_PREFIX):
            raise ValueError(f"customer id {text!r} has nothing after {CUSTOMER_PREFIX!r}")
        return text
    kind, value = parse_key(text)
    return key(kind, value)


def not_found(identifier: str) -> str:
    """The message of the ``NotFoundError`` for an identifier key or ``cus_`` id nobody has."""
    if identifier.startswith(CUSTOMER_PREFIX):
        return f"no customer {identifier!r}"
    return f"no customer has identifier {identifier!r}"


def no_profile(customer_id: str) -> str:
    """The message of the ``NotFoundError`` for a customer without a profile yet."""
    return f"customer {customer_id!r} has no profile yet"

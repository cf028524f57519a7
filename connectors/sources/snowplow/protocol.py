"""The Snowplow tracker protocol's vocabulary: schema URIs, event types, limits,
the collector endpoints, and the error a broken payload raises.

``Problem`` names one bad field (``data[0].se_ac``) and why; ``PayloadRejected``
carries every problem of a request and is terminal (the routes answer 400 and
keep the request as a dead letter).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from cdp.errors import CdpError, TerminalError

PAYLOAD_DATA: Final = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-"
UNSTRUCT_EVENT: Final = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-"
CONTEXTS: Final = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-"
EVENT_TYPES: Final = ("pv", "pp", "se", "ue", "tr", "ti")
MAX_ID_LENGTH: Final = 200
# The platform's Money type (schemas.crm): 18 digits, 4 of them after the point.
MONEY_PLACES: Final = 4
MONEY_WHOLE_DIGITS: Final = 14
#: The endpoint names a dead letter is stored under: the POST keeps the body,
#: the pixel its querystring.
POST_ENDPOINT: Final = "snowplow:tp2"
PIXEL_ENDPOINT: Final = "snowplow:i"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a tracker payload: where (``data[0].se_ac``) and why."""

    field: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "reason": self.reason}

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason


class PayloadRejected(TerminalError, CdpError):
    """The tracker payload breaks the protocol; ``problems`` name each field."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def is_version_of(schema: str, prefix: str) -> bool:
    """True when ``schema`` is ``prefix`` followed by a version number (``...1-0-`` + ``3``)."""
    rest = schema.removeprefix(prefix)
    return rest != schema and rest.isdigit()

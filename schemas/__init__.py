"""Event contracts: the Segment-spec envelope and the typed CRM events it carries.

Import from here: ``decode``/``loads``/``dumps`` turn raw data into frozen
pydantic models (``AnyEvent``) and back; ``stamp`` applies the server-side
time correction; ``time_bounds`` refuses events dated too far ahead of their
receipt; ``identifiers`` normalises customer identifiers.
"""

from schemas.context import Address, Campaign, Context, PageContext, Traits
from schemas.crm import (
    ConsentUpdated,
    EmailDelivered,
    EmailLinkClicked,
    EmailOpened,
    FormSubmitted,
    MessageReceived,
    MessageSent,
    OrderCompleted,
    OrderRefunded,
    ProductAdded,
    ProductProps,
    ProductViewed,
    SupportTicketClosed,
    SupportTicketOpened,
    SurveyAnswered,
)
from schemas.envelope import Alias, Envelope, Group, Identify, Page, Screen, Track
from schemas.errors import (
    CdpError,
    EventTooLargeError,
    EventValidationError,
    FieldProblem,
    TerminalError,
    TransientError,
)
from schemas.events import (
    EVENT_ADAPTER,
    MAX_EVENT_BYTES,
    SCHEMA_VERSIONS,
    AnyEvent,
    Event,
    decode,
    decode_stored,
    dumps,
    loads,
    tag_of,
)
from schemas.sales import (
    DealCreated,
    DealLost,
    DealStageChanged,
    DealUpdated,
    DealWon,
    SalesActivityLogged,
)
from schemas.stamp import stamp

__all__ = [
    "EVENT_ADAPTER",
    "MAX_EVENT_BYTES",
    "SCHEMA_VERSIONS",
    "Address",
    "Alias",
    "AnyEvent",
    "Campaign",
    "CdpError",
    "ConsentUpdated",
    "Context",
    "DealCreated",
    "DealLost",
    "DealStageChanged",
    "DealUpdated",
    "DealWon",
    "EmailDelivered",
    "EmailLinkClicked",
    "EmailOpened",
    "Envelope",
    "Event",
    "EventTooLargeError",
    "EventValidationError",
    "FieldProblem",
    "FormSubmitted",
    "Group",
    "Identify",
    "MessageReceived",
    "MessageSent",
    "OrderCompleted",
    "OrderRefunded",
    "Page",
    "PageContext",
    "ProductAdded",
    "ProductProps",
    "ProductViewed",
    "SalesActivityLogged",
    "Screen",
    "SupportTicketClosed",
    "SupportTicketOpened",
    "SurveyAnswered",
    "TerminalError",
    "Track",
    "Traits",
    "TransientError",
    "decode",
    "decode_stored",
    "dumps",
    "loads",
    "stamp",
    "tag_of",
]

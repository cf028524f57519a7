"""Typed CRM events: track messages whose ``event`` name has a contract.

Names and property names follow Segment's semantic specs (E-commerce v2,
Email, ...) where one exists; the SNS, survey, support and consent events are
this platform's own. Amounts are ``Decimal`` so that totals are exact and do
not depend on the order events are folded in.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.envelope import Envelope, Id

Money = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=4)]
Code = Annotated[str, Field(min_length=1, max_length=200)]
SnsChannel = Literal["line", "x", "instagram"]
ConsentPurpose = Literal["email", "sms", "line", "ads", "analytics", "phone"]


class Props(BaseModel):
    """Base of typed properties: frozen, snake_case on the wire, extras kept."""

    model_config = ConfigDict(frozen=True, extra="allow", coerce_numbers_to_str=True)


class ProductProps(Props):
    """A product as the E-commerce spec describes it."""

    product_id: Code
    sku: str | None = None
    name: str | None = None
    category: str | None = None
    brand: str | None = None
    variant: str | None = None
    price: Money | None = None
    quantity: int = Field(default=1, ge=1, le=1_000_000)
    url: str | None = None


class OrderProps(Props):
    """Order Completed (schema version 2; version 1 is upcast, see upcasters)."""

    order_id: Code
    revenue: Money
    currency: str = Field(default="JPY", pattern=r"^[A-Z]{3}$")
    total: Money | None = None
    shipping: Money | None = None
    tax: Money | None = None
    discount: Money | None = None
    coupon: str | None = None
    products: tuple[ProductProps, ...] = ()


class RefundProps(Props):
    """Order Refunded. ``total`` missing means the whole order was refunded."""

    order_id: Code
    total: Money | None = None
    currency: str = Field(default="JPY", pattern=r"^[A-Z]{3}$")
    products: tuple[ProductProps, ...] = ()


class FormProps(Props):
    """Form Submitted: which form and the fields as entered."""

    form_id: Code
    form_name: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)


class MessageProps(Props):
    """Message Received / Message Sent on an SNS channel."""

    channel: SnsChannel
    channel_user_id: Code
    text: str | None = Field(default=None, max_length=10_000)
    message_id: str | None = None


class EmailProps(Props):
    """Email Delivered / Opened / Link Clicked (Segment's Email spec)."""

    campaign_id: Code
    campaign_name: str | None = None
    variant: str | None = None
    email_id: str | None = None
    email_subject: str | None = None
    link_url: str | None = None


class SurveyProps(Props):
    """Survey Answered: answers keyed by question id."""

    survey_id: Code
    answers: dict[str, Any] = Field(default_factory=dict)
    nps: int | None = Field(default=None, ge=0, le=10)


class TicketProps(Props):
    """Support Ticket Opened / Closed."""

    ticket_id: Code
    subject: str | None = None
    channel: str | None = None
    priority: Literal["low", "normal", "high", "urgent"] | None = None
    resolution: str | None = None
    satisfaction: int | None = Field(default=None, ge=1, le=5)


class ConsentProps(Props):
    """Consent Updated: purposes granted (true) or withdrawn (false)."""

    consents: dict[ConsentPurpose, bool] = Field(min_length=1)


class _TypedTrack(Envelope):
    type: Literal["track"]


class ProductViewed(_TypedTrack):
    event: Literal["Product Viewed"]
    properties: ProductProps


class ProductAdded(_TypedTrack):
    event: Literal["Product Added"]
    properties: ProductProps


class OrderCompleted(_TypedTrack):
    event: Literal["Order Completed"]
    properties: OrderProps
    schema_version: int = Field(default=2, ge=1)


class OrderRefunded(_TypedTrack):
    event: Literal["Order Refunded"]
    properties: RefundProps


class FormSubmitted(_TypedTrack):
    event: Literal["Form Submitted"]
    properties: FormProps


class MessageReceived(_TypedTrack):
    event: Literal["Message Received"]
    properties: MessageProps


class MessageSent(_TypedTrack):
    event: Literal["Message Sent"]
    properties: MessageProps


class EmailDelivered(_TypedTrack):
    event: Literal["Email Delivered"]
    properties: EmailProps


class EmailOpened(_TypedTrack):
    event: Literal["Email Opened"]
    properties: EmailProps


class EmailLinkClicked(_TypedTrack):
    event: Literal["Email Link Clicked"]
    properties: EmailProps


class SurveyAnswered(_TypedTrack):
    event: Literal["Survey Answered"]
    properties: SurveyProps


class SupportTicketOpened(_TypedTrack):
    event: Literal["Support Ticket Opened"]
    properties: TicketProps


class SupportTicketClosed(_TypedTrack):
    event: Literal["Support Ticket Closed"]
    properties: TicketProps


class ConsentUpdated(_TypedTrack):
    event: Literal["Consent Updated"]
    properties: ConsentProps


TYPED_TRACKS: tuple[type[_TypedTrack], ...] = (
    ProductViewed,
    ProductAdded,
    OrderCompleted,
    OrderRefunded,
    FormSubmitted,
    MessageReceived,
    MessageSent,
    EmailDelivered,
    EmailOpened,
    EmailLinkClicked,
    SurveyAnswered,
    SupportTicketOpened,
    SupportTicketClosed,
    ConsentUpdated,
)

__all__ = ["TYPED_TRACKS", "Id"]

"""SFA destinations in ``<data dir>/destinations.toml``, with their field mappings.

::

    [salesforce]
    platform = "salesforce"
    base_url = "https://example.my.salesforce.com"   # My Domain (token endpoint)
    object = "Lead"                                   # or "Contact"
    external_id_field = "CDP_Customer_Id__c"          # an External ID field, unique
    auth = "client_credentials"                       # or "jwt"
    client_id = "env:SF_CLIENT_ID"
    client_secret = "env:SF_CLIENT_SECRET"            # client_credentials
    # username = "integration@example.jp"             # jwt: the user to act as
    # private_key = "env:SF_PRIVATE_KEY"              # jwt: PEM RSA key (or private_key_file)
    [salesforce.fields]                               # SFA field = source (see records.SOURCES)
    Prefecture__c = "region"
    FirstName = ""                                    # "" drops a default field
    [salesforce.constants]
    LeadSource = "CDP"

    [hubspot]
    platform = "hubspot"
    access_token = "env:HUBSPOT_TOKEN"                # private app token

    [kintone]
    platform = "kintone"
    base_url = "https://example.cybozu.com"
    app = 12
    api_token = "env:KINTONE_TOKEN"
    update_key = "顧客ID"                              # 重複禁止 text field holding the customer id
    [kintone.fields]
    "都道府県" = "region"

Every SFA destination takes the common keys of
``connectors.destinations.push.config`` and: ``segment`` (pushed by
``cdp destinations push``; ``hot_leads`` by default), ``consent`` (``email`` by
default: sales will contact them; ``none`` pushes everyone), ``fields``
(merged over the platform's ``DEFAULT_FIELDS``) and ``constants`` (fixed
values, e.g. a Lead's required ``Company``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from connectors.destinations.push_destination import PushDestination

Constant = str | int | float | bool

SALESFORCE_FIELDS: dict[str, str] = {
    "Email": "email",
    "Phone": "phone",
    "FirstName": "first_name",
    "LastName": "last_name",
    "CDP_User_Id__c": "user_id",
    "CDP_Lead_Score__c": "lead_score",
    "CDP_Score_Reasons__c": "score_reasons",
    "CDP_Lifecycle_Stage__c": "lifecycle_stage",
    "CDP_Funnel_Stage__c": "funnel_stage",
    "HasOptedOutOfEmail": "email_opt_out",
}
"""Salesforce default mapping (Lead and Contact share these standard fields;
the ``CDP_*__c`` custom fields are created by the admin, see docs/sales.md)."""

HUBSPOT_FIELDS: dict[str, str] = {
    "email": "email",
    "phone": "phone",
    "firstname": "first_name",
    "lastname": "last_name",
    "cdp_customer_id": "customer_id",
    "cdp_user_id": "user_id",
    "cdp_lead_score": "lead_score",
    "cdp_score_reasons": "score_reasons",
    "cdp_lifecycle_stage": "lifecycle_stage",
    "cdp_funnel_stage": "funnel_stage",
    "cdp_consents": "consents",
}
"""HubSpot default mapping (internal property names; ``cdp_*`` are custom properties)."""

KINTONE_FIELDS: dict[str, str] = {
    "メールアドレス": "email",
    "電話番号": "phone",
    "氏名": "name",
    "ユーザーID": "user_id",
    "リードスコア": "lead_score",
    "スコア理由": "score_reasons",
    "ライフサイクル": "lifecycle_stage",
    "ファネル": "funnel_stage",
    "同意": "consents",
}
"""kintone default mapping: field codes of the leads app (change them to yours)."""


class SfaDestination(PushDestination):
    """What the three SFA destinations share: the segment, the mapping, the constants."""

    consent: str = "email"
    segment: str = "hot_leads"
    fields: dict[str, str] = Field(default_factory=dict)
    constants: dict[str, Constant] = Field(default_factory=dict)

    def defaults(self) -> dict[str, str]:
        """The platform's default mapping (SFA field → source)."""
        return {}

    def key_field(self) -> str:
        """The SFA field that identifies a record (always mapped)."""
        raise NotImplementedError

    def key_source(self) -> str:
        """The source the key field carries."""
        return "customer_id"

    def mapping(self) -> dict[str, str]:
        """SFA field → source: the defaults, then ``fields`` ("" drops one), then the key."""
        merged = {**self.defaults(), **self.fields}
        merged = {field: source for field, source in merged.items() if source}
        merged[self.key_field()] = self.key_source()
        return merged


class Salesforce(SfaDestination):
    """Leads or contacts upserted by an external id (sObject Collections, REST API)."""

    platform: Literal["salesforce"]
    base_url: str = "https://login.salesforce.com"
    api_version: str = "v62.0"
    object: Literal["Lead", "Contact"] = "Lead"
    external_id_field: str = "CDP_Customer_Id__c"
    auth: Literal["client_credentials", "jwt"] = "client_credentials"
    client_id: str
    client_secret: str | None = None
    username: str | None = None
    private_key: str | None = None
    private_key_file: str | None = None
    audience: str = "https://login.salesforce.com"
    """The JWT ``aud``: login.salesforce.com, test.salesforce.com for a sandbox."""

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        digits = value.removeprefix("v").split(".")
        if len(digits) != 2 or not all(d.isdigit() for d in digits) or int(digits[0]) < 46:
            raise ValueError("must be vNN.N, 46.0 or later (sObject Collections upsert)")
        return value if value.startswith("v") else f"v{value}"

    @field_validator("external_id_field")
    @classmethod
    def _external_id(cls, value: str) -> str:
        if value.lower() == "id":
            raise ValueError("must be an External ID field, not the record Id")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> Salesforce:
        if self.auth == "client_credentials" and not self.client_secret:
            raise ValueError("auth = client_credentials needs client_secret")
        if self.auth == "jwt" and not (
            self.username and (self.private_key or self.private_key_file)
        ):
            raise ValueError("auth = jwt needs username and private_key (or private_key_file)")
        return self

    def defaults(self) -> dict[str, str]:
        return dict(SALESFORCE_FIELDS)

    def key_field(self) -> str:
        return self.external_id_field

    @property
    def secret_fields(self) -> tuple[str, ...]:
        if self.auth == "jwt":
            return ("client_id",) if self.private_key_file else ("client_id", "private_key")
        return ("client_id", "client_secret")

    def target(self) -> str:
        return f"salesforce:{self.base_url}:{self.object}"


class HubSpot(SfaDestination):
    """Contacts upserted by e-mail (CRM v3 batch upsert) with a private app token."""

    platform: Literal["hubspot"]
    base_url: str = "https://api.hubapi.com"
    access_token: str

    def defaults(self) -> dict[str, str]:
        return dict(HUBSPOT_FIELDS)

    def key_field(self) -> str:
        return "email"

    def key_source(self) -> str:
        return "email"

    @property
    def secret_fields(self) -> tuple[str, ...]:
        return ("access_token",)

    def target(self) -> str:
        return f"hubspot:{self.base_url}:contacts"


class Kintone(SfaDestination):
    """Records of one kintone app upserted by a unique field (REST records API)."""

    platform: Literal["kintone"]
    base_url: str
    app: int = Field(gt=0)
    api_token: str
    update_key: str = "顧客ID"
    guest_space_id: int | None = Field(default=None, gt=0)
    true_value: str = "はい"
    false_value: str = "いいえ"

    def defaults(self) -> dict[str, str]:
        return dict(KINTONE_FIELDS)

    def key_field(self) -> str:
        return self.update_key

    @property
    def secret_fields(self) -> tuple[str, ...]:
        return ("api_token",)

    def target(self) -> str:
        return f"kintone:{self.base_url}:app/{self.app}"


AnySfa = Salesforce | HubSpot | Kintone

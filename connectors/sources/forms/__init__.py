"""HTML form posts → Form Submitted, the identify it implies, and Consent Updated.

A shop's own forms (newsletter sign-up, contact, catalogue request) post to
``/v1/forms/{form_id}``. The HTTP route owns the I/O; this module is pure
apart from reading the configuration file:

- ``load_forms(path)`` reads the per-form field mapping from
  ``<data dir>/forms.toml`` (``FormsConfig`` of ``FormMapping``);
- ``parse_body(content_type, body)`` turns an urlencoded, multipart or JSON
  body into ``{field: value}`` (a repeated field becomes a list);
- ``to_events(form_id, fields, mapping, received_at, message_seed)`` maps the
  fields to raw Segment-format events for ``cdp.services.ingest.to_record``.

The configuration::

    [forms.newsletter]
    email = "email"                     # the posted field holding the email
    phone = "tel"
    first_name = "first_name"           # and/or name = "full_name"
    last_name = "last_name"
    first_name_kana = "sei_kana"        # optional furigana fields
    last_name_kana = "mei_kana"
    anonymous_id = "ajs_anonymous_id"   # hidden field; default "anonymous_id"
    user_id = "customer_id"             # optional: the shop's own customer id
    consents = { email = "agree_newsletter", ads = "agree_ads" }
    redirect = "https://shop.example.jp/thanks"   # optional, see FormMapping

Every key is checked: a typo is a ``ConfigError`` naming the file and the key
path (``forms.toml: forms.newsletter.emial: unknown key``). A missing file
means no form is configured, and a post to a form that is not configured is
refused (``FormsConfig.mapping_for`` raises ``UnmappableError``) so that junk
posts to made-up form ids are dead-lettered, not stored as customer data.

Errors: ``parse_body`` raises ``cdp.services.collector.RequestRejected`` (the client
sent something malformed: HTTP 400, or 415 for an unsupported content type,
naming the field); ``to_events`` raises ``cdp.errors.UnmappableError`` when a
well-formed post cannot become events (no identity, an invalid email or
phone, an unreadable checkbox); its message names the form and the posted
field, and the route dead-letters the post with it.
"""

from __future__ import annotations

from connectors.sources.forms.body import (
    JSON,
    MAX_FIELDS,
    MULTIPART,
    URLENCODED,
    Fields,
    parse_body,
)
from connectors.sources.forms.config import (
    CONSENT_PURPOSES,
    FORM_ID_PATTERN,
    TRAIT_KEYS,
    FieldName,
    FormId,
    FormMapping,
    FormsConfig,
    load_forms,
)
from connectors.sources.forms.mapping import (
    CHECKED,
    MAX_SEED_LENGTH,
    SECRET_PARTS,
    SECRET_WORDS,
    UNCHECKED,
    WRITTEN_VERSIONS,
    RawEvent,
    is_secret_field,
    to_events,
)

__all__ = [
    "CHECKED",
    "CONSENT_PURPOSES",
    "FORM_ID_PATTERN",
    "JSON",
    "MAX_FIELDS",
    "MAX_SEED_LENGTH",
    "MULTIPART",
    "SECRET_PARTS",
    "SECRET_WORDS",
    "TRAIT_KEYS",
    "UNCHECKED",
    "URLENCODED",
    "WRITTEN_VERSIONS",
    "FieldName",
    "Fields",
    "FormId",
    "FormMapping",
    "FormsConfig",
    "RawEvent",
    "is_secret_field",
    "load_forms",
    "parse_body",
    "to_events",
]

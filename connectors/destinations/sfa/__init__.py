"""Hand leads to the sales team's SFA: Salesforce, HubSpot and kintone.

A segment (``hot_leads`` by default) is pushed as one upserted record per
member, keyed by the customer id (Salesforce external id field, kintone
``updateKey``) or the e-mail (HubSpot), through the audience sync of
``connectors.destinations.push`` (incremental, journaled, crash-safe):

- ``config``: the destinations.toml sections and their field mappings;
- ``records``: what a record may carry (identifiers, lead score and reasons,
  stages, consent, profile traits) and how a mapping turns it into fields;
- ``base``: the platform protocol all three share (adds only, per-record
  errors kept and retried);
- ``salesforce``, ``hubspot``, ``kintone``: each vendor's API;
- ``handoff``: push to several destinations, each on its own, with the audit
  entries (``cdp destinations push``).

This ``__init__`` imports nothing: ``connectors.destinations.push.config``
imports ``sfa.config`` and the push package imports the platforms lazily.
"""

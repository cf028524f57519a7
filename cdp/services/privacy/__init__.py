"""Privacy by design (issue 16): erasure and suppression of a person, the audit log,
and the APPI records of every provision of personal data to a third party.

Everything here keeps its files under ``<data dir>/privacy/`` (``files.py``);
docs/privacy.md says what is kept, where, and why.
"""

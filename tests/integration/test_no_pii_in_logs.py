"""No personal data in the server's output at any log level, and the audit log
of the read API, over a real ``cdp serve --log-level debug`` subprocess.

Collector events (identify, track, page, a batch with a broken event that is
dead-lettered) and profile lookups (found, not found, refused 401 and 403)
carry a unique email, phone and name; afterwards the server's whole stdout and
stderr is scanned for those values: as sent, normalised, URL-encoded, and the
plain SHA-256 (full and 16-character prefix) of the values and identifier keys.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from cdp.services.privacy import audit, files
from cdp.services.sources import SourceRegistry
from cdp.services.tokens import TokenRegistry
from schemas.identifiers import key, normalise_email, normalise_phone
from tests.loopback import cdp_serve

pytestmark = pytest.mark.integration


def forms_of(email: str, phone: str, name: str) -> list[str]:
    """Every spelling of the person that must not appear in a log."""
    norm_email = normalise_email(email)
    norm_phone = normalise_phone(phone)
    assert norm_email and norm_phone
    plain = [
        email,
        norm_email,
        phone,
        norm_phone,
        name,
        email.split("@", maxsplit=1)[0],
        phone.replace("-", ""),
    ]
    keys = [key("email", norm_email), key("phone", norm_phone)]
    spelled = [*plain, *keys, *(quote(v) for v in plain + keys), *(quote(v, safe="") for v in keys)]
    digests = [hashlib.sha256(v.encode()).hexdigest() for v in [*plain, *keys]]
    return sorted({*spelled, *digests, *(d[:16] for d in digests)})


def test_debug_logs_hold_no_personal_data_and_the_audit_log_has_the_reads(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    unique = uuid.uuid4().hex[:10]
    email = f"Pii.{unique}@Example.JP"
    digits = str(int(unique, 16) % 10**8).zfill(8)
    phone = f"090-{digits[:4]}-{digits[4:]}"
    name = f"Hanako Leakcheck{unique}"
    write_key = SourceRegistry(data_dir).add("web")
    tokens = TokenRegistry(data_dir)
    reader = tokens.add("crm-sync", ["profiles:read"])
    segments_only = tokens.add("bi", ["segments:read"])
    traits = {"email": email, "phone": phone, "name": name}

    with cdp_serve(data_dir, "--log-level", "debug") as server:
        with httpx.Client(base_url=server.url, auth=(write_key, ""), timeout=30) as http:
            ident = {"userId": f"u-{unique}", "traits": traits}
            assert http.post("/v1/identify", json=ident).status_code == 200
            track = {"userId": f"u-{unique}", "event": "Signed Up", "properties": traits}
            assert http.post("/v1/track", json=track).status_code == 200
            page = {"anonymousId": f"a-{unique}", "context": {"traits": traits}}
            assert http.post("/v1/page", json=page).status_code == 200
            broken = {"type": "identify", "traits": traits, "timestamp": f"not a time {email}"}
            http.post("/v1/batch", json={"batch": [broken, {**ident, "type": "identify"}]})
        with httpx.Client(base_url=server.url, timeout=30) as http:
            lookup = f"/v1/profiles/{quote('email:' + email)}"
            bearer = {"authorization": f"Bearer {reader}"}
            # The read model catches up at its next checkpoint: wait for the profile.
            deadline = time.monotonic() + 60
            while http.get(lookup, headers=bearer).status_code != 200:
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.2)
            assert http.get(f"/v1/profiles/{quote('phone:' + phone)}", headers=bearer).is_success
            http.get(f"/v1/profiles/{quote('email:nobody.' + email)}", headers=bearer)
            assert http.get(lookup).status_code == 401
            other = {"authorization": f"Bearer {segments_only}"}
            assert http.get(lookup, headers=other).status_code == 403
            assert http.get(lookup, headers={"authorization": "Bearer rt_wrong"}).status_code == 401
    output = server.log()

    assert "DEBUG cdp: logging at debug" in output  # the level took effect
    leaks = [form for form in forms_of(email, phone, name) if form.lower() in output.lower()]
    assert leaks == [], f"personal data in the server output: {leaks}\n{output}"

    # The audit log (flushed at shutdown) names tokens and pseudonyms, never the person.
    lookups = audit.entries(data_dir, action="profile.lookup")
    seen = [(e.actor, e.details["status"]) for e in lookups]
    assert ("crm-sync", 200) in seen and ("bi", 403) in seen
    assert seen.count(("unauthenticated", 401)) == 2
    secret = files.pepper(data_dir)
    assert {e.target for e in lookups if e.actor == "bi"} == {
        audit.subject(secret, "email:" + email)
    }
    assert audit.subject(secret, "phone:" + phone) in {e.target for e in lookups}
    written = b"".join(p.read_bytes() for p in audit.directory(data_dir).iterdir()).lower()
    assert [f for f in forms_of(email, phone, name) if f.lower().encode() in written] == []
    assert audit.verify(data_dir).ok

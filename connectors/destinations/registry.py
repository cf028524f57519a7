"""File destinations by name: what each writes, its default extension and consent.

``cdp export SEGMENT --to NAME --out FILE`` looks the name up here. Every
writer takes the consenting audience (``cdp.services.query.Audience``), the options
given with ``--option key=value`` and the output path, writes the file
atomically and returns a ``Written``: the records written (rows, lines or
ids), the members they stand for and the consenting members left out for
want of a usable identifier, by reason (``accounting.py``), with the customer
ids and data items in the file (for the APPI provision record). HTTP push destinations live in ``connectors/destinations/push`` and are not
in this registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

import orjson

from cdp.errors import ConfigError
from cdp.services.query import Audience
from connectors.destinations import google_ads, line, meta, tiktok, x_ads
from connectors.destinations.accounting import Written, tally
from connectors.destinations.csv_file import write_csv
from connectors.destinations.files import atomic_path, write_lines
from connectors.destinations.members import Member, members_from_audience
from connectors.destinations.parquet_file import write_parquet
from connectors.destinations.privacy import items_of

Writer = Callable[[Path, Audience, Mapping[str, str]], Written]


@dataclass(frozen=True)
class FileDestination:
    """A named file format: ``options`` maps each option to its allowed values, default first."""

    name: str
    description: str
    write: Writer
    extension: str
    consent: str = "ads"
    options: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def resolve_options(self, given: Mapping[str, str]) -> dict[str, str]:
        """Defaults overlaid with ``given``; ``ConfigError`` naming an unknown option or value."""
        resolved = {name: values[0] for name, values in self.options.items()}
        for name, value in given.items():
            if name not in self.options:
                known = ", ".join(self.options) or "none"
                raise ConfigError(
                    f"destination {self.name} has no option {name!r} (options: {known})"
                )
            if value not in self.options[name]:
                allowed = ", ".join(self.options[name])
                raise ConfigError(
                    f"option {name}={value!r} of destination {self.name}: use one of {allowed}"
                )
            resolved[name] = value
        return resolved


def _write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as temp:
        temp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")


def _everyone(count: int, aud: Audience) -> Written:
    # csv / parquet carry every consenting member, identifiers or not.
    people = tuple(str(row[aud.columns.index("customer_id")]) for row in aud.rows)
    return Written(records=count, exported=len(aud.rows), people=people, items=aud.columns)


def _ids(kept: list[Member]) -> tuple[str, ...]:
    return tuple(m.customer_id for m in kept)


def _csv(path: Path, aud: Audience, _: Mapping[str, str]) -> Written:
    return _everyone(write_csv(path, aud.columns, aud.rows), aud)


def _parquet(path: Path, aud: Audience, _: Mapping[str, str]) -> Written:
    return _everyone(write_parquet(path, aud.columns, aud.rows), aud)


def _google_ads_csv(path: Path, aud: Audience, options: Mapping[str, str]) -> Written:
    hashed = options["hashed"] == "true"
    headers = google_ads.CSV_HEADERS_HASHED if hashed else google_ads.CSV_HEADERS_PLAIN
    kept, excluded = tally(members_from_audience(aud), google_ads.exclusion)
    count = write_csv(path, headers, google_ads.csv_rows(kept, hashed=hashed))
    return Written(count, len(kept), excluded, _ids(kept), headers)


def _google_ads_json(path: Path, aud: Audience, _: Mapping[str, str]) -> Written:
    kept, excluded = tally(members_from_audience(aud), google_ads.exclusion)
    operations = [{"create": {"userIdentifiers": google_ads.user_identifiers(m)}} for m in kept]
    _write_json(path, {"operations": operations})
    items = tuple(items_of(operations))
    return Written(len(operations), len(kept), excluded, _ids(kept), items)


def _meta_csv(path: Path, aud: Audience, _: Mapping[str, str]) -> Written:
    kept, excluded = tally(members_from_audience(aud), meta.exclusion)
    count = write_csv(path, meta.CSV_HEADERS, meta.csv_rows(kept))
    return Written(count, len(kept), excluded, _ids(kept), meta.CSV_HEADERS)


def _meta_json(path: Path, aud: Audience, _: Mapping[str, str]) -> Written:
    kept, excluded = tally(members_from_audience(aud), meta.exclusion)
    batches = list(meta.payloads(kept))
    _write_json(path, batches)
    count = sum(len(batch["data"]) for batch in batches)
    return Written(count, len(kept), excluded, _ids(kept), meta.SCHEMA)


def _line_audience(path: Path, aud: Audience, _: Mapping[str, str]) -> Written:
    kept, excluded = tally(members_from_audience(aud), line.exclusion)
    ids = line.messaging_audience(kept)
    count = write_lines(path, [str(item["id"]) for item in ids])
    return Written(count, len(kept), excluded, _ids(kept), ("LINE user id",))


def _line_ads(path: Path, aud: Audience, options: Mapping[str, str]) -> Written:
    identifier = cast(line.AdsIdentifier, options["identifier"])
    kept, excluded = tally(members_from_audience(aud), lambda m: line.ads_exclusion(m, identifier))
    rows = line.ads_rows(kept, identifier)
    count = write_lines(path, [r[0] for r in rows])
    return Written(count, len(kept), excluded, _ids(kept), (f"SHA-256 {identifier}",))


def _x_csv(path: Path, aud: Audience, options: Mapping[str, str]) -> Written:
    identifier = cast(x_ads.XIdentifier, options["identifier"])
    kept, excluded = tally(members_from_audience(aud), lambda m: x_ads.exclusion(m, identifier))
    rows = x_ads.file_rows(kept, identifier)
    item = "SHA-256 X user id" if identifier == "user_id" else "SHA-256 email"
    count = write_lines(path, [r[0] for r in rows])
    return Written(count, len(kept), excluded, _ids(kept), (item,))


def _tiktok_csv(path: Path, aud: Audience, _: Mapping[str, str]) -> Written:
    kept, excluded = tally(members_from_audience(aud), tiktok.exclusion)
    count = write_csv(path, tiktok.CSV_HEADERS, tiktok.file_rows(kept))
    return Written(count, len(kept), excluded, _ids(kept), tiktok.CSV_HEADERS)


DESTINATIONS: Final[dict[str, FileDestination]] = {
    d.name: d
    for d in (
        FileDestination("csv", "every audience column, identifiers in clear", _csv, ".csv"),
        FileDestination("parquet", "every audience column, typed (Parquet)", _parquet, ".parquet"),
        FileDestination(
            "google_ads_csv",
            "Google Ads Customer Match upload template (Email, Phone, names, Country, Zip)",
            _google_ads_csv,
            ".csv",
            options={"hashed": ("true", "false")},
        ),
        FileDestination(
            "google_ads_json",
            "Google Ads API OfflineUserDataJob operations (UserIdentifier JSON)",
            _google_ads_json,
            ".json",
        ),
        FileDestination(
            "meta_csv",
            "Meta customer-list file, hashed (email, phone, fn, ln, gen, doby, ct, st, zip, "
            "country)",
            _meta_csv,
            ".csv",
        ),
        FileDestination(
            "meta_json",
            "Meta Custom Audience /users payloads, 10,000 rows each",
            _meta_json,
            ".json",
        ),
        FileDestination(
            "line_audience",
            "LINE Messaging API audience: one LINE user id per line",
            _line_audience,
            ".txt",
            consent="line",
        ),
        FileDestination(
            "line_ads",
            "LINE Ads audience: one SHA-256 e-mail or phone per line",
            _line_ads,
            ".txt",
            options={"identifier": ("email", "phone")},
        ),
        FileDestination(
            "x_csv",
            "X Ads list audience: one SHA-256 e-mail or X user id per line",
            _x_csv,
            ".csv",
            options={"identifier": x_ads.IDENTIFIERS},
        ),
        FileDestination(
            "tiktok_csv",
            "TikTok customer file (Email_SHA256, Phone_SHA256)",
            _tiktok_csv,
            ".csv",
        ),
    )
}
"""Every file destination, by name."""


def get(name: str) -> FileDestination:
    """The destination called ``name``; ``ConfigError`` listing the known ones otherwise."""
    try:
        return DESTINATIONS[name]
    except KeyError:
        known = ", ".join(DESTINATIONS)
        raise ConfigError(f"destination {name!r} is not supported; use one of {known}") from None

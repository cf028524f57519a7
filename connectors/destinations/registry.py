"""File destinations by name: what each writes, its default extension and consent.

``cdp export SEGMENT --to NAME --out FILE`` looks the name up here. Every
writer takes the consenting audience (``cdp.query.Audience``), the options
given with ``--option key=value`` and the output path, writes the file
atomically and returns the number of records written (rows, lines or ids).
HTTP push destinations live in ``connectors/destinations/push`` and are not
in this registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

import orjson

from cdp.errors import ConfigError
from cdp.query import Audience
from connectors.destinations import google_ads, line, meta, tiktok, x_ads
from connectors.destinations.csv_file import write_csv
from connectors.destinations.files import atomic_path, write_lines
from connectors.destinations.members import members_from_audience
from connectors.destinations.parquet_file import write_parquet

Writer = Callable[[Path, Audience, Mapping[str, str]], int]


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


def _csv(path: Path, aud: Audience, _: Mapping[str, str]) -> int:
    return write_csv(path, aud.columns, aud.rows)


def _parquet(path: Path, aud: Audience, _: Mapping[str, str]) -> int:
    return write_parquet(path, aud.columns, aud.rows)


def _google_ads_csv(path: Path, aud: Audience, options: Mapping[str, str]) -> int:
    hashed = options["hashed"] == "true"
    headers = google_ads.CSV_HEADERS_HASHED if hashed else google_ads.CSV_HEADERS_PLAIN
    rows = google_ads.csv_rows(members_from_audience(aud), hashed=hashed)
    return write_csv(path, headers, rows)


def _google_ads_json(path: Path, aud: Audience, _: Mapping[str, str]) -> int:
    operations = [
        {"create": {"userIdentifiers": identifiers}}
        for member in members_from_audience(aud)
        if (identifiers := google_ads.user_identifiers(member))
    ]
    _write_json(path, {"operations": operations})
    return len(operations)


def _meta_csv(path: Path, aud: Audience, _: Mapping[str, str]) -> int:
    return write_csv(path, meta.CSV_HEADERS, meta.csv_rows(members_from_audience(aud)))


def _meta_json(path: Path, aud: Audience, _: Mapping[str, str]) -> int:
    batches = list(meta.payloads(members_from_audience(aud)))
    _write_json(path, batches)
    return sum(len(batch["data"]) for batch in batches)


def _line_audience(path: Path, aud: Audience, _: Mapping[str, str]) -> int:
    ids = line.messaging_audience(members_from_audience(aud))
    return write_lines(path, [str(item["id"]) for item in ids])


def _line_ads(path: Path, aud: Audience, options: Mapping[str, str]) -> int:
    identifier = cast(line.AdsIdentifier, options["identifier"])
    rows = line.ads_rows(members_from_audience(aud), identifier)
    return write_lines(path, [r[0] for r in rows])


def _x_csv(path: Path, aud: Audience, options: Mapping[str, str]) -> int:
    identifier = cast(x_ads.XIdentifier, options["identifier"])
    rows = x_ads.file_rows(members_from_audience(aud), identifier)
    return write_lines(path, [r[0] for r in rows])


def _tiktok_csv(path: Path, aud: Audience, _: Mapping[str, str]) -> int:
    return write_csv(path, tiktok.CSV_HEADERS, tiktok.file_rows(members_from_audience(aud)))


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

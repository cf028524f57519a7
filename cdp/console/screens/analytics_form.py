"""What every analytics page is made of: the :class:`Analytic` record, reading
its GET form (the CLI's options, checked: :class:`BadOption` names a wrong
one), the ``cdp analytics`` command line printing the same numbers, and how
cohorts, dates and shares are written on a page."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import duckdb

from cdp.services.analytics import Report

Options = dict[str, Any]
Reports = dict[str, Report]
Query = Mapping[str, str]
Text = Callable[..., str]
"""The viewer's translation of a text key."""


class BadOption(ValueError):
    """A form value the page cannot use; ``option`` names the field."""

    def __init__(self, option: str, value: str) -> None:
        super().__init__(f"option {option!r}: {value!r} is not a valid value")
        self.option = option
        self.value = value


def text(query: Query, name: str) -> str | None:
    value = query.get(name, "").strip()
    if len(value) > 200:
        raise BadOption(name, value[:40] + "…")
    return value or None


def choice(query: Query, name: str, choices: tuple[str, ...], default: str) -> str:
    value = query.get(name, "").strip() or default
    if value not in choices:
        raise BadOption(name, value)
    return value


def number(
    query: Query, name: str, kind: type[int] | type[float], default: float, low: float, high: float
) -> Any:
    raw = query.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise BadOption(name, raw) from None
    if not low <= value <= high:
        raise BadOption(name, raw)
    return value


@dataclass(frozen=True, slots=True)
class Analytic:
    """One analytics page (see the module docstring)."""

    name: str
    options: Callable[[Query], Options]
    compute: Callable[[duckdb.DuckDBPyConnection, Options], Reports]
    view: Callable[[Reports, Options, Query, Text], dict[str, Any]]
    downloads: dict[str, str]
    cli: Callable[[Options], str]
    """The ``cdp analytics`` command printing the same numbers."""


def command(name: str, options: Options, flags: Mapping[str, str]) -> str:
    """``cdp analytics NAME --flag value ...`` for the options that are set
    (``flags``: option → CLI flag; ``True`` options are bare flags)."""
    words = ["cdp", "analytics", name]
    for option, flag in flags.items():
        value = options.get(option)
        if value is True:
            words.append(flag)
        elif value is not None and value is not False:
            words += [flag, shlex.quote(str(value))]
    return " ".join(words)


def label(value: Any, period: str = "month") -> str:
    """A cohort, a day or a moment as people read it."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, date):
        if period == "month":
            return value.strftime("%Y-%m")
        if period == "quarter":
            return f"{value.year}-Q{(value.month - 1) // 3 + 1}"
        return value.isoformat()
    return str(value)


def pct(value: float | None, digits: int = 1) -> str:
    """A share 0..1 as a percentage (``–`` for none)."""
    return "–" if value is None else f"{value * 100:.{digits}f}%"

"""Time for the generator: the window, JST days, and fast ISO-8601 formatting.

Journeys work in float epoch seconds (UTC); only ``IsoFormatter`` turns them
into the wire form ``2026-05-01T03:04:05.123Z``. ``datetime.isoformat`` per
event would cost a fifth of the generator's time budget, so the formatter
builds the string from cached day prefixes and a table of the 86,400 times of
day.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

DAY: Final = 86_400.0
HOUR: Final = 3_600.0
MINUTE: Final = 60.0
JST: Final = timezone(timedelta(hours=9), "JST")
_JST_OFFSET: Final = 9 * 3_600


def months_before(moment: datetime, months: int) -> datetime:
    """``moment`` shifted back by calendar months, the day clipped to the month's length."""
    year, month0 = divmod(moment.year * 12 + moment.month - 1 - months, 12)
    day = min(moment.day, calendar.monthrange(year, month0 + 1)[1])
    return moment.replace(year=year, month=month0 + 1, day=day)


def jst_midnight(t: float) -> float:
    """Epoch seconds of 00:00 JST on the JST day containing ``t``."""
    return ((int(t) + _JST_OFFSET) // 86_400) * 86_400 - _JST_OFFSET


@dataclass(frozen=True, slots=True)
class Window:
    """The time window events fall in, as epoch seconds (``start <= t <= end``)."""

    start: float
    end: float

    @classmethod
    def ending(cls, end: datetime, months: int) -> Window:
        """The ``months`` calendar months up to ``end`` (judged in JST, the shop's zone)."""
        local_end = end.astimezone(JST)
        return cls(months_before(local_end, months).timestamp(), end.timestamp())

    @property
    def days(self) -> float:
        """Length of the window in days."""
        return (self.end - self.start) / DAY


@dataclass(frozen=True, slots=True)
class Campaign:
    """A monthly newsletter: sent on the 10th at 10:00 JST."""

    campaign_id: str
    name: str
    month: int
    sent_at: float


def monthly_campaigns(window: Window) -> tuple[Campaign, ...]:
    """The newsletters whose send time falls inside ``window``, oldest first."""
    first = datetime.fromtimestamp(window.start, JST)
    last = datetime.fromtimestamp(window.end, JST)
    out: list[Campaign] = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        sent = datetime(year, month, 10, 10, 0, tzinfo=JST).timestamp()
        if window.start <= sent <= window.end:
            out.append(
                Campaign(
                    f"{year}-{month:02d}-newsletter",
                    f"{year}年{month}月ニュースレター",
                    month,
                    sent,
                )
            )
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return tuple(out)


class IsoFormatter:
    """Formats epoch seconds as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC, milliseconds).

    Table lookups and concatenation: the day prefix (precomputed for the
    window and a day either side; other days take a slower path), ``HH:MM:``,
    ``SS.`` and ``mmmZ``. The tables are small on purpose: random access into
    a big one (say all 60,000 ``SS.mmmZ``) misses the CPU cache and is slower.
    """

    __slots__ = ("_days", "_first_day", "_millis", "_minutes", "_seconds")

    def __init__(self, window: Window) -> None:
        self._first_day = int(window.start) // 86_400 - 1
        last_day = int(window.end) // 86_400 + 1
        self._days = [
            datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%dT")
            for day in range(self._first_day, last_day + 1)
        ]
        self._minutes = [f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60)]
        self._seconds = [f"{s:02d}." for s in range(60)]
        self._millis = [f"{ms:03d}Z" for ms in range(1000)]

    def _minute(self, minutes: int) -> str:
        """``YYYY-MM-DDTHH:MM:`` of a minute since the epoch."""
        day, minute = divmod(minutes, 1440)
        index = day - self._first_day
        if 0 <= index < len(self._days):
            return self._days[index] + self._minutes[minute]
        day_text = datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%dT")
        return day_text + self._minutes[minute]

    def __call__(self, t: float) -> str:
        return self.millis(int(t * 1000))

    def millis(self, millis: int) -> str:
        """Format epoch milliseconds."""
        minutes, rest = divmod(millis, 60_000)
        second, thousandths = divmod(rest, 1000)
        return self._minute(minutes) + self._seconds[second] + self._millis[thousandths]

    def pair(self, millis: int, later: int) -> tuple[str, str]:
        """Two times given in epoch milliseconds, ``later >= millis`` and usually close.

        The common case (same minute, in the window) shares the
        ``YYYY-MM-DDTHH:MM:`` part. ``//`` and ``%`` rather than ``divmod``:
        this runs twice per event.
        """
        minutes = millis // 60_000
        rest = millis - minutes * 60_000
        index = minutes // 1440 - self._first_day
        if 0 <= index < len(self._days):
            head = self._days[index] + self._minutes[minutes % 1440]
        else:
            head = self._minute(minutes)
        seconds, thousandths = self._seconds, self._millis
        second = rest // 1000
        first = head + seconds[second] + thousandths[rest - second * 1000]
        rest += later - millis
        if rest < 60_000:
            second = rest // 1000
            return first, head + seconds[second] + thousandths[rest - second * 1000]
        return first, self.millis(later)

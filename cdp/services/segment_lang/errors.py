"""The error of an invalid segment definition: every problem with its rule path."""

from __future__ import annotations

from collections.abc import Sequence

from cdp.errors import SegmentError


class SegmentRuleError(SegmentError):
    """A segment definition is invalid; each problem names the rule by its path.

    Paths follow the document: ``rules.all[2].event.within_days``. ``problems``
    holds ``(path, message)`` pairs in document order.
    """

    def __init__(self, problems: Sequence[tuple[str, str]], segment: str | None = None) -> None:
        self.problems = list(problems)
        self.segment = segment
        where = f"segment {segment!r}" if segment else "segment definition"
        listed = "; ".join(f"{path}: {message}" if path else message for path, message in problems)
        super().__init__(f"{where} is invalid: {listed}")

    @property
    def paths(self) -> list[str]:
        """The offending paths, in order."""
        return [path for path, _ in self.problems]

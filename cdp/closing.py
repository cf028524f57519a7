"""``Closing``: a resource that is its own context manager (``with X.open(...) as x``).

Engines, sessions, remote connections and topic followers all release what
they hold in ``close()``; this base gives each ``__enter__`` (returning the
resource) and ``__exit__`` (closing it, whatever happened) once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class Closing(ABC):
    """Base of a resource released by ``close()``; ``with`` closes it on exit.

    ``close`` is abstract: a subclass that forgets it cannot be instantiated."""

    __slots__ = ()

    @abstractmethod
    def close(self) -> None:
        """Release what the resource holds."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

"""Shared helpers of the benchmarks: timing and printing figures."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """Run ``fn`` once; its result and wall-clock seconds."""
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def machine() -> str:
    """One line about where the figures were measured."""
    return f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores"


def line(label: str, events: int, seconds: float) -> str:
    rate = events / seconds if seconds else float("inf")
    return f"{label:<44} {events:>10,} events {seconds:>8.2f} s {rate:>12,.0f} events/s"

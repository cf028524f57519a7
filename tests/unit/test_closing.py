"""``cdp.closing.Closing``: ``with`` closes the resource, even on error."""

from __future__ import annotations

import pytest

from cdp.closing import Closing


class Resource(Closing):
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_with_returns_the_resource_and_closes_it_once() -> None:
    with Resource() as resource:
        assert resource.closed == 0
    assert resource.closed == 1


def test_it_closes_when_the_block_raises() -> None:
    resource = Resource()
    with pytest.raises(RuntimeError), resource:
        raise RuntimeError("boom")
    assert resource.closed == 1


def test_a_subclass_without_close_cannot_be_made() -> None:
    class Forgot(Closing):
        pass

    with pytest.raises(TypeError, match="close"):
        Forgot()  # type: ignore[abstract]

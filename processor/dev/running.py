"""`Running`: something started and ended around a `with` block (the embedded broker, and the
tests' processes, listeners and proxy)."""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Self


class Running(abc.ABC):
    """Started by `start()`, ended by `close()`; `with` does both, `close()` also when the
    block raised, so a failed test leaves nothing running behind it."""

    @abc.abstractmethod
    def start(self) -> object:
        """Start; what it returns is the subclass's to say (itself, an address)."""

    @abc.abstractmethod
    def close(self) -> None:
        """End it, whatever state it is in; a second call does nothing."""

    def leave(self, failed: bool) -> None:
        """The end of a `with` block. One that ended well may check more than `close()` does;
        after a failure only `close()` runs, so the block's error stays the one reported."""
        self.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.leave(exc is not None)

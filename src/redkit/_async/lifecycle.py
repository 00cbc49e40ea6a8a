"""Context-manager use for everything that has background work to stop."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Closeable:
    """A pattern with ``aclose()`` works as a context manager, which calls it on exit.

    Subclasses implement ``aclose``: stop their background work and release what they hold
    (never the client, which belongs to the caller).
    """

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

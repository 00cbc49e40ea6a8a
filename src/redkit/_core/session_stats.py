"""``SessionStore.stats``: a live view of a session store's counters."""

from __future__ import annotations

from redkit._core.events import Event, Events


class SessionStats:
    """``created``, ``destroyed``, ``rotated``, ``index_lifts`` and ``slide_failures``
    (reads whose expiry could not slide: Redis refused writes); ``snapshot()`` copies every
    counter, ``reset()`` zeroes them."""

    __slots__ = ("_events",)

    def __init__(self, events: Events) -> None:
        self._events = events

    @property
    def created(self) -> int:
        """Sessions created."""
        return self._events.count(Event.SESSION_CREATED)

    @property
    def destroyed(self) -> int:
        """Sessions destroyed (one by one or with ``destroy_all``)."""
        return self._events.count(Event.SESSION_DESTROYED)

    @property
    def rotated(self) -> int:
        """Sessions moved to a new id."""
        return self._events.count(Event.SESSION_ROTATED)

    @property
    def index_lifts(self) -> int:
        """Horizons lifted in a user index."""
        return self._events.count(Event.SESSION_INDEX_LIFTED)

    @property
    def slide_failures(self) -> int:
        """Reads answered while Redis refused writes: their expiry did not slide."""
        return self._events.count(Event.SESSION_SLIDE_FAILED)

    def snapshot(self) -> dict[str, int]:
        """Every counter, by event name."""
        return self._events.snapshot()

    def reset(self) -> None:
        """Set every counter back to zero."""
        self._events.reset()

    def __repr__(self) -> str:
        return (
            f"SessionStats(created={self.created}, destroyed={self.destroyed}, "
            f"rotated={self.rotated}, slide_failures={self.slide_failures})"
        )

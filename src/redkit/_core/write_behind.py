"""Write-behind's pure parts: versions, cache-entry framing, coalescing and the spreading of
shards over flushers. No I/O. The key layout is :class:`redkit._core.keys.StreamLayout`.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from redkit._core.events import CacheStats, Event

#: Shards of one prefix, by default: one stream (one Cluster slot) per shard, so 16 spread a
#: busy prefix over every primary of a small Cluster; each flusher round reads them in turn.
DEFAULT_SHARDS = 16
#: The consumer group every flusher of a prefix reads through.
GROUP = "redkit-flushers"
#: Bits of a version given to the stream entry's sequence number (see :func:`version_of`).
SEQ_BITS = 20
_SEQ_MAX = (1 << SEQ_BITS) - 1


def version_of(sid: bytes | str) -> int:
    """The version of a write: its stream id ``ms-seq`` as one int, ``ms << 20 | seq``.

    Versions of one id increase with its writes (they share a stream, whose ids increase),
    fit a signed 64-bit column until the year 2248, and compare as the writes' order. A
    sequence above 2**20 - 1 (a million writes to one shard in one server millisecond, which
    only a server clock stepped back for a long time can cause) is clamped: the version then
    stays equal for those writes instead of growing, and ties are flushed in stream order.
    """
    text = sid.decode() if isinstance(sid, bytes) else sid
    ms, dash, seq = text.partition("-")
    if not dash or not ms.isdigit() or not seq.isdigit():
        raise ValueError(f"not a stream id: {text!r}")
    return int(ms) << SEQ_BITS | min(int(seq), _SEQ_MAX)


#: Bytes of the token that starts every write (see :func:`frame`).
TOKEN_SIZE = 8
#: How long the server remembers a write's token (an update's op id), at least, so that a
#: re-send of it is not applied twice: redis-py re-sends a command whose reply timed out
#: (connect()'s defaults: 5 s timeout, 3 retries, backoff up to 2 s, about 21 s in all).
#: Writers name a shard's op-memory hash after their time window (this long), and each hash
#: lives this long after its last record, so each write costs a hash field (about 60
#: bytes) for one to two windows.
RESEND_WINDOW_MS = 60_000


def new_op_id() -> bytes:
    """A random token for one write or update (see :func:`frame`)."""
    return random.getrandbits(64).to_bytes(TOKEN_SIZE, "little")


def frame(payload: bytes) -> bytes:
    """A write's bytes, as the stream and the cache entry hold them: a random token, then
    the encoded entity.

    The token tells the flusher whether a cache entry still holds the write it flushed (it
    then gives the entry its TTL) and tells a replay whether a newer write superseded a dead
    letter. Random, not a counter, so forked processes never repeat one (``random`` reseeds
    after fork); two writes of one id share a token with probability 2**-64.
    """
    return new_op_id() + payload


def unframe(data: bytes) -> bytes | None:
    """The encoded entity in a write's bytes, or None when they are too short to be one."""
    if len(data) <= TOKEN_SIZE:
        return None
    return data[TOKEN_SIZE:]


@dataclass
class Pending:
    """The newest write of one id in a batch, and every stream entry of the id in it."""

    id: str
    #: the stream id the write was made as (a replayed dead letter keeps its first one)
    version: bytes
    #: the write's bytes: its token, then the encoded entity
    payload: bytes
    sids: list[bytes] = field(default_factory=list)
    attempts: int = 0
    error: str = ""


@dataclass
class Batch:
    """Stream entries read from one shard, coalesced per id (last write wins)."""

    pending: dict[str, Pending]
    #: entries that are not writes (fields missing): dead-lettered as they are
    malformed: list[tuple[bytes, Mapping[bytes, bytes]]]
    entries: int


def coalesce(entries: Iterable[tuple[bytes, Mapping[bytes, bytes]]]) -> Batch:
    """Group stream entries (in stream order) per id; the last one of each id wins.

    A write's fields are ``i`` (id) and ``d`` (bytes); a replayed dead letter also carries
    ``v``, its original version, which any other entry takes from its own stream id.
    """
    pending: dict[str, Pending] = {}
    malformed: list[tuple[bytes, Mapping[bytes, bytes]]] = []
    count = 0
    for sid, fields in entries:
        count += 1
        raw_id = fields.get(b"i")
        payload = fields.get(b"d")
        try:
            text = raw_id.decode() if raw_id and payload is not None else ""
        except UnicodeDecodeError:
            text = ""
        if not text:
            malformed.append((sid, fields))
            continue
        version = fields.get(b"v") or sid
        found = pending.get(text)
        if found is None:
            pending[text] = Pending(text, version, payload, [sid])  # type: ignore[arg-type]
        else:
            found.version = version
            found.payload = payload  # type: ignore[assignment]
            found.sids.append(sid)
    return Batch(pending, malformed, count)


def owner(shard: int, members: Iterable[str]) -> str | None:
    """The member that should own ``shard`` (rendezvous hashing), None without members.

    Every flusher computes the same answer from the same members; when one joins or leaves,
    only the shards it wins or held move.
    """
    best: str | None = None
    best_score = -1
    for member in members:
        score = zlib.crc32(f"{member}\0{shard}".encode())
        if score > best_score or (score == best_score and best is not None and member > best):
            best, best_score = member, score
    return best


class WriteBehindStats(CacheStats):
    """A live view of a write-behind's counters: its reads (as a cache's) and its writes."""

    __slots__ = ()

    @property
    def writes(self) -> int:
        """Entities written (in Redis, cached and queued for the repository)."""
        return self._events.count(Event.WRITE)

    @property
    def flushed(self) -> int:
        """Entities written to the repository by this instance's flusher."""
        return self._events.count(Event.FLUSHED)

    @property
    def batches(self) -> int:
        """Batches upserted into the repository."""
        return self._events.count(Event.FLUSH_BATCH)

    @property
    def coalesced(self) -> int:
        """Stream entries not upserted because a newer write of their id was in the batch."""
        return self._events.count(Event.COALESCED)

    @property
    def failed_batches(self) -> int:
        """Upserts the repository refused (each is retried, split, or dead-lettered)."""
        return self._events.count(Event.FLUSH_FAILED)

    @property
    def dead_letters(self) -> int:
        """Entities moved to the dead-letter stream after ``max_attempts`` failures."""
        return self._events.count(Event.DEAD_LETTER)

    @property
    def refused_writes(self) -> int:
        """Writes refused because the backlog was full (BackpressureError)."""
        return self._events.count(Event.BACKPRESSURE)

    @property
    def claimed(self) -> int:
        """Pending entries of another (dead) flusher claimed by this one."""
        return self._events.count(Event.CLAIMED)

    def __repr__(self) -> str:
        return (
            f"WriteBehindStats(writes={self.writes}, flushed={self.flushed}, "
            f"batches={self.batches}, dead_letters={self.dead_letters}, "
            f"refused_writes={self.refused_writes}, hits={self.hits}, misses={self.misses})"
        )

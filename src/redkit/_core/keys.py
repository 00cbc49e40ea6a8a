"""Key naming: ``prefix[:vVERSION]:{id}`` with the id as the Cluster hash tag.

The id sits in braces so that every companion key of an entry (``...:{id}:lock``) hashes to
the same Cluster slot and one Lua script may touch them all. Redis ends a hash tag at the first
``}``, so an id is written inside the tag with ``%`` as ``%25`` and ``}`` as ``%7D``: no id can
end the tag early (``"}x"`` would otherwise leave an empty tag and scatter an entry and its lock
over two slots), and distinct ids still give distinct keys.

Every companion suffix is declared here, in :class:`Companion`, and nowhere else, with the
companions each kind of entry has (:data:`CACHE_ENTRY`, :data:`ADAPTIVE_ENTRY`,
:data:`LOCK_ENTRY`, :data:`SESSION_ENTRY`): sweeps such as ``invalidate_pattern`` delete every
companion of their kind, so none can be forgotten.
"""

from __future__ import annotations

import enum
import re
import zlib

from redkit.errors import ConfigurationError, InvalidKey

KeyId = str | int

_GLOB = re.compile(r"([*?\[\]\\])")


class Companion(enum.StrEnum):
    """Keys that live beside an entry, in its slot: ``<entry key>:<suffix>``."""

    #: the fill lock (lease) of a cache entry; set/invalidate delete it to revoke fills
    LOCK = "lock"
    # -- locks (Lock, Redlock) --
    #: a lock's fencing counter: the last token handed out (the larger of itself + 1 and the
    #: server's clock in microseconds); it outlives the lock by a margin, then expires
    FENCE = "fence"
    #: a lock's wake-up list: a release pushes one signal, a blocked acquire BLPOPs it
    SIGNAL = "signal"
    #: a lock's release marker: the token of the last release, so that a re-sent release
    #: reports the release it made; expires after a margin
    RELEASED = "released"
    # -- AdaptiveTTLCache --
    #: an entry's shared read statistics (a hash: hits, misses, last hit in server
    #: milliseconds); expires with the entry
    STATS = "stats"
    # -- SessionStore --
    #: what a rotation or destroy left of a session for a short while (its token, and the
    #: data it moved), so that redis-py's re-send of the same call gets the same answer
    GONE = "gone"
    # -- rate limiters --
    #: ``<entry key>:hit:<random id>``: the record of one admitted hit, so that a hit redis-py
    #: re-sends after a lost reply is not counted again; expires after a short while
    HIT = "hit"
    # -- cache entries (CacheAside, AdaptiveTTLCache, TieredCache) --
    #: the write tokens of the last few sets applied to an entry (a short list, expires on its
    #: own after a minute): a re-sent set that already ran is recognised and writes nothing
    APPLIED = "applied"


#: The companions each kind of entry has. A KeySpace is made for one kind; its sweeps and
#: invalidations delete exactly these (a cache sweep must never reset a lock's fencing counter).
CACHE_ENTRY: tuple[Companion, ...] = (Companion.LOCK, Companion.APPLIED)
ADAPTIVE_ENTRY: tuple[Companion, ...] = (Companion.LOCK, Companion.APPLIED, Companion.STATS)
LOCK_ENTRY: tuple[Companion, ...] = (Companion.FENCE, Companion.SIGNAL, Companion.RELEASED)
SESSION_ENTRY: tuple[Companion, ...] = (Companion.GONE,)
#: A limited key's companions: its hits' records (``<entry key>:hit:<random id>``, one per
#: admitted hit, each expiring on its own; limiters never sweep).
LIMITER_ENTRY: tuple[Companion, ...] = (Companion.HIT,)
NO_COMPANIONS: tuple[Companion, ...] = ()


def escape_glob(text: str) -> str:
    """``text`` with Redis glob characters escaped, so SCAN MATCH treats them literally."""
    return _GLOB.sub(r"\\\1", text)


def encode_id(text: str) -> str:
    """``text`` made safe inside a hash tag: ``%`` -> ``%25``, ``}`` -> ``%7D`` (reversible)."""
    if "%" in text:
        text = text.replace("%", "%25")
    if "}" in text:
        text = text.replace("}", "%7D")
    return text


def id_text(id: object) -> str:
    """The text an id is keyed by: a str, an int (not a bool) or an Enum of one, by value."""
    kind = type(id)
    if kind is str:
        if id:
            return id  # type: ignore[return-value]
        raise InvalidKey("id must not be empty")
    if kind is int:
        return str(id)
    if isinstance(id, enum.Enum):
        return id_text(id.value)
    if isinstance(id, bool):
        raise InvalidKey(f"id must be a str or int, not a bool: {id!r}")
    if isinstance(id, str):
        return id_text(str.__str__(id))
    if isinstance(id, int):
        return str(int(id))
    raise InvalidKey(f"id must be a str or int, got {kind.__name__}: {id!r}")


class KeySpace:
    """Builds the keys of one namespace (a prefix and an optional version) for entries of one
    kind, whose companions are ``kind`` (:data:`CACHE_ENTRY` by default)."""

    __slots__ = ("_suffixes", "kind", "namespace", "prefix", "version")

    def __init__(
        self,
        prefix: str,
        version: int | str | None = None,
        *,
        kind: tuple[Companion, ...] = CACHE_ENTRY,
    ) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise InvalidKey(f"prefix must be a non-empty str, got {prefix!r}")
        _no_braces(prefix, "prefix")
        if version is not None:
            if isinstance(version, bool) or not isinstance(version, int | str):
                raise InvalidKey(f"version must be an int or str, got {type(version).__name__}")
            _no_braces(str(version), "version")
        self.prefix = prefix
        self.version = version
        self.namespace = f"{prefix}:" if version is None else f"{prefix}:v{version}:"
        self.kind = kind
        self._suffixes = tuple(f"}}:{role.value}".encode() for role in kind)

    def key(self, id: KeyId) -> str:
        """The Redis key of ``id``; raises InvalidKey for an empty or non str/int id."""
        kind = type(id)
        if (kind is str and id and "}" not in id and "%" not in id) or kind is int:  # type: ignore[operator]
            return f"{self.namespace}{{{id}}}"  # the common cases, kept short
        return f"{self.namespace}{{{encode_id(id_text(id))}}}"

    def keys(self, ids: list[KeyId]) -> list[str]:
        """The Redis keys of ``ids``, in order (the batch form of :meth:`key`)."""
        namespace = self.namespace
        out: list[str] = []
        append = out.append
        for id in ids:
            kind = type(id)
            if (kind is str and id and "}" not in id and "%" not in id) or kind is int:  # type: ignore[operator]
                append(f"{namespace}{{{id}}}")
            else:
                append(self.key(id))
        return out

    def match(self, pattern: str) -> str:
        """A SCAN MATCH pattern for the entries and companions of ids matching ``pattern``.

        ``pattern`` is a Redis glob over ids (``*``, ``?``, ``[...]``); ``%`` and ``}`` in it
        are encoded as in keys. Only this namespace (prefix and version) is matched.
        """
        if not isinstance(pattern, str) or not pattern:
            raise InvalidKey(f"pattern must be a non-empty str, got {pattern!r}")
        return f"{escape_glob(self.namespace)}{{{encode_id(pattern)}}}*"

    def id_of(self, raw: bytes) -> str | None:
        """The id text of ``raw`` if it is an entry key of this namespace (as :meth:`key`
        wrote it, ``%7D``/``%25`` decoded), else None (companions, other namespaces).

        Ids that differ only in type (``1`` and ``"1"``) share a key, and so an id text.
        """
        head = self.namespace.encode() + b"{"
        if not raw.startswith(head) or not raw.endswith(b"}"):
            return None
        inner = raw[len(head) : -1]
        if not inner or b"}" in inner:
            return None
        try:
            text = inner.decode()
        except UnicodeDecodeError:
            return None
        if "%" in text:
            text = text.replace("%7D", "}").replace("%25", "%")
        return text

    def entry_of(self, raw: bytes) -> bytes | None:
        """The entry key that ``raw`` (an entry or one of its companions) belongs to, or None.

        Used by sweeps over SCAN results: a key of this namespace that is neither an entry
        nor a companion of this kind is not ours, and is left alone.
        """
        if raw.endswith(b"}"):
            return raw
        for suffix in self._suffixes:
            if raw.endswith(suffix):
                return raw[: -len(suffix) + 1]
        return None

    def companions(self, key: str) -> list[str]:
        """Every companion key of entry ``key`` (those of this space's kind)."""
        return [f"{key}:{role.value}" for role in self.kind]


def companion(key: str, role: Companion) -> str:
    """The key of ``key``'s companion ``role`` (same hash tag, same slot)."""
    return f"{key}:{role.value}"


def _no_braces(text: str, what: str) -> None:
    if "{" in text or "}" in text:
        raise InvalidKey(
            f"{what} {text!r} contains a brace; redkit places the hash tag itself "
            "(around the id) so that an entry and its companion keys share a Cluster slot"
        )


#: Write-behind: the most streams one prefix may be spread over.
MAX_SHARDS = 1024


class StreamLayout:
    """The keys of one write-behind prefix ``P`` spread over ``S`` stream shards.

    ``S`` is fixed for a prefix (the first writer or flusher records it; any other count is
    refused)::

        P:{P:s}:stream     shard s's stream of unflushed writes (fields i = id, d = bytes)
        P:{P:s}:dead       shard s's dead letters (i, d, v = version, e = error, a = attempts)
        P:{P:s}:lease      the token of the flusher that owns shard s
        P:{P:s}:attempts   failed attempts of shard s's entries (stream id -> count), kept
                           in Redis so that they add up across flushers and restarts
        P:{P:s}:e:<id>     the cache entry of an id in shard s: the newest write's bytes
        P:{P:s}:ops:<w>    shard s's op memory of the writers' time window w: the tokens of
                           recent writes (-> their stream ids), so that a re-sent write is
                           applied once
        P:{P}:shards       S
        P:{P}:flushers     the live flushers (a sorted set: token -> last heartbeat)

    An id goes to shard ``crc32(utf-8 id) % S``, so every write of an id lands in the same
    stream, in the order of the writes, and its cache entry shares the stream's hash tag
    (``{P:s}``): one script appends to the stream and stores the entry, on a Cluster too.
    The tag is the shard, not the id, so these are not :class:`Companion` keys.
    """

    __slots__ = ("_bases", "_streams", "meta", "prefix", "registry", "shards")

    def __init__(self, prefix: str, shards: int) -> None:
        KeySpace(prefix)  # the same checks as every prefix: non-empty str, no braces
        if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= MAX_SHARDS:
            raise ConfigurationError(
                f"shards must be an int from 1 to {MAX_SHARDS}, got {shards!r}"
            )
        self.prefix = prefix
        self.shards = shards
        self._bases = [f"{prefix}:{{{prefix}:{s}}}:" for s in range(shards)]
        self._streams = [f"{base}stream" for base in self._bases]
        self.meta = f"{prefix}:{{{prefix}}}:shards"
        self.registry = f"{prefix}:{{{prefix}}}:flushers"

    def shard_of(self, text: str) -> int:
        """The shard of the id whose text is ``text``."""
        return zlib.crc32(text.encode()) % self.shards

    def locate(self, text: str) -> tuple[str, str]:
        """The stream and the cache entry of id ``text``; InvalidKey if it is not UTF-8."""
        try:
            shard = zlib.crc32(text.encode()) % self.shards
        except UnicodeEncodeError:
            raise InvalidKey(f"id {text!r} cannot be encoded as UTF-8") from None
        return self._streams[shard], f"{self._bases[shard]}e:{text}"

    def entry(self, shard: int, text: str) -> str:
        """The cache entry of id ``text`` (in ``shard``)."""
        return f"{self._bases[shard]}e:{text}"

    def stream(self, shard: int) -> str:
        return self._streams[shard]

    def write_keys(self, text: str, window: int) -> list[str]:
        """The keys a write of id ``text`` in time window ``window`` touches: its stream, its
        cache entry and its shard's op memory; InvalidKey if it is not UTF-8."""
        try:
            shard = zlib.crc32(text.encode()) % self.shards
        except UnicodeEncodeError:
            raise InvalidKey(f"id {text!r} cannot be encoded as UTF-8") from None
        base = self._bases[shard]
        return [self._streams[shard], f"{base}e:{text}", f"{base}ops:{window}"]

    def ops(self, shard: int, window: int) -> str:
        """Shard ``shard``'s op memory of time window ``window``."""
        return f"{self._bases[shard]}ops:{window}"

    def dead(self, shard: int) -> str:
        return f"{self._bases[shard]}dead"

    def lease(self, shard: int) -> str:
        return f"{self._bases[shard]}lease"

    def attempts(self, shard: int) -> str:
        return f"{self._bases[shard]}attempts"

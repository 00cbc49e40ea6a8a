"""redkit's implementation: ``_async`` is written by hand, ``_sync`` generated from it.

The kernel, and how a pattern plugs into it
-------------------------------------------

A pattern is one module here (``cache_aside.py``, ``write_through.py``, ...), thin over the
kernel. Who owns what:

- ``redkit._core.keys``: every key and companion suffix (``Companion``), declared once; a
  pattern builds keys with a ``KeySpace`` and ``companion(key, Companion.X)``, never by
  spelling a suffix. Sweeps (``invalidate_pattern``) delete every declared companion.
- ``redkit/lua/*.lua`` + ``redkit._scripts.script(name)``: the Lua scripts, each with a
  KEYS/ARGV/Returns header; keys of one script share a hash tag.
- ``store.Store``: the pattern's one door to Redis. It checks the client (face, bytes),
  reads through the read batcher (``get``, ``get_many``), runs scripts (``run``, and
  ``run_many`` in one pipeline), sends commands (``call``), scans every primary (``scan``),
  translates every redis-py error once (``redkit._translate``), keeps redkit's commands under
  the client's pool size (a gate per client), runs single-flight calls (``flight``), and is
  the write barrier: ``write``/``write_many``/``unlink`` detach the written keys from reads
  and flights in flight. ``invalidate_later`` retries a failed invalidation in the background.
  On the sync face its GETs, MGETs and EVALSHAs go out on lanes (``redkit._lanes``): pool
  connections kept checked out, skipping redis-py's per-command overhead.
- ``redkit._core.degradation.Degradation``: what a Redis failure does (``on_error``, the
  breaker), classified once: ``read_failed``, ``fill_failed``; ``is_open`` for the breaker.
- ``redkit._core.events.Events``: the event sink; a pattern ``emit``s what it does
  (``Event.HIT``...; add members to ``Event``), its ``stats`` is a view over it, and
  monitoring subscribes to it (``redkit.subscribe``).
- ``redkit._acompat`` / ``redkit._compat``: the primitives (sleep, ``Event``, ``Gate``,
  ``Background`` to spawn and stop background work, ``SharedCall``); ``ASYNC`` and
  ``if ASYNC:`` / ``else:`` blocks for the few face-specific lines.

A new pattern: build a ``KeySpace``, an ``Events(pattern, name, threadsafe=not ASYNC)``, a
``Degradation`` if it degrades, and a ``Store(client, keys, pattern=..., events=...)``; read
with ``store.get``; write with ``store.write`` (so the barrier applies); run background work
on ``store.background`` and stop it in ``aclose()`` (``close()`` on the sync face);
subclass ``lifecycle.Closeable`` for context-manager use. If the pattern needs something the
kernel lacks, the kernel grows (a primitive in both compat modules, a method on the store),
not the pattern.
"""

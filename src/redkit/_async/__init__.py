"""redkit's implementation: ``_async`` is written by hand, ``_sync`` generated from it."""

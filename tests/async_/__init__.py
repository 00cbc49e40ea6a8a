"""Tests of the async face; ``tests/sync`` is generated from them."""

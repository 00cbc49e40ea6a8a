"""The async -> sync generator: face blocks, unused rules, and the committed sync face."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("gen_sync", ROOT / "scripts/gen_sync.py")
assert _spec is not None and _spec.loader is not None
gen_sync = importlib.util.module_from_spec(_spec)
sys.modules["gen_sync"] = gen_sync
_spec.loader.exec_module(gen_sync)


def test_async_block_keeps_the_else_body_dedented() -> None:
    source = (
        "def f():\n"
        "    if ASYNC:\n"
        "        a = 1\n"
        "\n"
        "        b = 2\n"
        "    else:\n"
        "        a = 3\n"
        "        if a:\n"
        "            a += 1\n"
        "    return a\n"
    )
    assert gen_sync.strip_async_blocks(source) == (
        "def f():\n    a = 3\n    if a:\n        a += 1\n    return a\n"
    )


def test_async_block_without_else_disappears() -> None:
    source = "x = 0\nif ASYNC:\n    import asyncio\n\ny = 1\n"
    assert gen_sync.strip_async_blocks(source) == "x = 0\n\ny = 1\n"


def test_nested_or_misspelt_blocks_are_refused() -> None:
    nested = "if ASYNC:\n    if ASYNC:\n        x = 1\n"
    with pytest.raises(gen_sync.BlockError, match="nest"):
        gen_sync.strip_async_blocks(nested)
    with pytest.raises(gen_sync.BlockError, match="block"):
        gen_sync.strip_async_blocks("if ASYNC and x:\n    x = 1\n")


def test_negated_block_keeps_its_own_body_for_the_sync_face() -> None:
    source = "if not ASYNC:\n    a = 1\nelse:\n    a = 2\nb = a\n"
    assert gen_sync.strip_async_blocks(source) == "a = 1\nb = a\n"


def test_sync_bodies_are_copied_verbatim() -> None:
    source = (
        "import redis.asyncio\nif ASYNC:\n    x = 1\nelse:\n    import redis.asyncio as other\n"
    )
    assert gen_sync.unasync_source(source) == "import redis\nimport redis.asyncio as other\n"


def test_unused_rules_are_reported() -> None:
    usage = gen_sync.Usage(paths={old for old, _ in gen_sync.PATHS}, names=set(gen_sync.NAMES))
    assert usage.unused() == []
    usage.names.discard("aclose")
    assert usage.unused() == ["name 'aclose'"]


def test_committed_sync_face_matches_its_source() -> None:
    expected = gen_sync.generate()
    drifted = [p for p, text in expected.items() if not p.exists() or p.read_text() != text]
    assert drifted == [], "run `make sync`"
    assert gen_sync.stale_outputs(expected) == []

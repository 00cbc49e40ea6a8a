"""The async/sync seam: ``_acompat`` and ``_compat`` offer the same primitives, and only those."""

from __future__ import annotations

import inspect
from typing import Any

import redkit._acompat as acompat
import redkit._compat as compat


def _shape(obj: Any) -> list[tuple[str, str]]:
    """Parameter names and kinds (annotations differ by face: Awaitable vs plain)."""
    if inspect.isclass(obj):
        obj = obj.__init__
    try:
        parameters = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):  # a builtin such as asyncio.sleep vs time.sleep
        return []
    return [(p.name, p.kind.name) for p in parameters]


def _public_methods(cls: type) -> dict[str, Any]:
    return {
        name: member
        for name, member in vars(cls).items()
        if not name.startswith("_") and (callable(member) or isinstance(member, property))
    }


def test_both_faces_export_the_same_names() -> None:
    assert sorted(acompat.__all__) == sorted(compat.__all__)
    for name in acompat.__all__:
        assert hasattr(acompat, name) and hasattr(compat, name), name


def test_the_primitives_have_matching_signatures() -> None:
    for name in acompat.__all__:
        mine, twin = getattr(acompat, name), getattr(compat, name)
        if name in ("ASYNC", "sleep"):
            continue
        assert _shape(mine) == _shape(twin), name
        if inspect.isclass(mine):
            ours, theirs = _public_methods(mine), _public_methods(twin)
            assert sorted(ours) == sorted(theirs), name
            for method in ours:
                if isinstance(ours[method], property):
                    assert isinstance(theirs[method], property), f"{name}.{method}"
                    continue
                assert _shape(ours[method]) == _shape(theirs[method]), f"{name}.{method}"


def test_the_faces_say_which_they_are() -> None:
    assert acompat.ASYNC is True and compat.ASYNC is False


def test_the_seam_holds_primitives_only() -> None:
    """No algorithms here: batching and single-flight tables live in redkit._async."""
    for module in (acompat, compat):
        names = {
            n
            for n, v in vars(module).items()
            if inspect.isclass(v) and v.__module__ == module.__name__
        }
        assert names <= {"Background", "Event", "Gate", "SharedCall"}, names

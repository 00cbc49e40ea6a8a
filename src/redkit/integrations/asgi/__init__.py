"""Pure ASGI middleware (Starlette, FastAPI, any ASGI app): sessions and rate limiting.

``SessionMiddleware`` lives in :mod:`.sessions`, ``RateLimitMiddleware`` in :mod:`.ratelimit`;
both are imported on first use, so importing this package costs nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {"SessionMiddleware": ".sessions", "RateLimitMiddleware": ".ratelimit"}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home, __name__), name)

"""Running registered Lua scripts: EVALSHA first, EVAL once on NOSCRIPT."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError

from redkit._core.translate import REDIS_ERRORS, translate
from redkit._scripts import LuaScript


async def run_script(
    client: Any, script: LuaScript, keys: Sequence[str], args: Sequence[Any] = ()
) -> Any:
    """Run ``script`` atomically on the node owning ``keys``; redis errors become redkit's."""
    try:
        try:
            return await client.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(script.source, len(keys), *keys, *args)
    except REDIS_ERRORS as exc:
        raise translate(exc) from exc

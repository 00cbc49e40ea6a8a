"""The registry of redkit's Lua scripts, read from ``redkit/lua/*.lua``.

Each script file starts with a header naming its KEYS, ARGV and return value. Scripts run by
SHA1 (EVALSHA); a server that does not know one yet (NOSCRIPT) gets its source once through
EVAL, which also caches it there — see :func:`redkit._async.scripting.run_script`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True, slots=True)
class LuaScript:
    """One script: its file name (without .lua), source text and SHA1."""

    name: str
    source: str
    sha: str


@cache
def script(name: str) -> LuaScript:
    """The script ``redkit/lua/<name>.lua``."""
    source = resources.files("redkit").joinpath("lua", f"{name}.lua").read_text()
    return LuaScript(name, source, hashlib.sha1(source.encode()).hexdigest())


def all_scripts() -> list[LuaScript]:
    """Every script shipped with redkit."""
    folder = resources.files("redkit").joinpath("lua")
    return [script(entry.name[:-4]) for entry in folder.iterdir() if entry.name.endswith(".lua")]

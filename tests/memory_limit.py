"""A test server at ``maxmemory`` (``noeviction``): every write that needs memory is refused."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis

from tests.servers import primaries


@contextlib.contextmanager
def capped_memory(url: str, headroom: int = 1 << 20) -> Iterator[None]:
    """Every primary behind ``url`` refuses writes (OOM) once it uses ``headroom`` bytes more
    than now; the limit is lifted on exit (the servers are shared by the whole session)."""
    nodes = [redis.Redis(host=host, port=port) for host, port in primaries(url)]
    policies = []
    try:
        for node in nodes:
            policies.append(node.config_get("maxmemory-policy")["maxmemory-policy"])
            node.config_set("maxmemory-policy", "noeviction")
            node.config_set("maxmemory", int(node.info("memory")["used_memory"]) + headroom)
        yield
    finally:
        for node, policy in zip(nodes, policies, strict=False):
            node.config_set("maxmemory", 0)
            node.config_set("maxmemory-policy", policy)
        for node in nodes:
            node.close()

"""``redkit server``: every topology, bad options as usage errors, log tails printed as text."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest
import redis

import redkit
from redkit.cli import main


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["--cluster", "-1"], "cluster must be 0 or a number of primaries, not -1"),
        (["--cluster", "2", "--sentinel"], "either a cluster or a sentinel group"),
        (["--host", "nope"], "host='nope' is not an IP address"),
    ],
)
def test_bad_option_is_a_usage_error(
    argv: list[str], shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["server", *argv]) == 2
    out = capsys.readouterr().out
    assert "bad option" in out and shown in out


def test_a_failed_start_prints_the_log_as_text(
    capsys: pytest.CaptureFixture[str], server_kind: str
) -> None:
    assert main(["server", "--binary", "/nonexistent/[bold]x[/bold]"]) == 1
    out = capsys.readouterr().out
    assert "could not start the server" in out
    assert "[bold]x[/bold]" in out  # not eaten as rich markup


def _addresses(url: str) -> list[tuple[str, int]]:
    netloc = url.split("://", 1)[1].split("/", 1)[0]
    items = [item.rpartition(":") for item in netloc.split(",")]
    return [(host.strip("[]"), int(port)) for host, _, port in items]


@pytest.mark.parametrize(
    ("argv", "scheme"),
    [(["--sentinel"], "redis+sentinel://"), (["--host", "::1"], "redis://[::1]:")],
    ids=["sentinel", "ipv6"],
)
def test_server_runs_each_topology(argv: list[str], scheme: str, server_kind: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "redkit.cli", "server", "--binary", server_kind, *argv],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.search(r"redis\S*://\S+", first)
        assert match is not None, first
        url = match.group(0)
        assert url.startswith(scheme)
        assert len(_addresses(url)) == (3 if "sentinel" in scheme else 1)
        client = redkit.connect(url)
        assert client.ping()
        client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        for host, port in _addresses(url):  # every process stopped with the command
            with pytest.raises(redis.ConnectionError):
                redis.Redis(host, port, socket_connect_timeout=1, retry=None).ping()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()

"""The ``redkit`` command, run in-process (``main(argv)``) against real servers."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest
import redis

from redkit.cli import main
from redkit.embedded import EmbeddedServer

SMALL = ["--users", "300", "--reads", "1000"]


def _check_demo_output(out: str) -> None:
    assert "fetches: 1 for 100 concurrent misses" in out
    match = re.search(r"cache hit rate: (\d+\.\d)%", out)
    assert match is not None, out
    assert float(match.group(1)) > 50.0
    assert re.search(r"queries saved: [\d,]+ of [\d,]+", out)
    assert re.search(
        r"consistency: (\d+)/\1 updated users' cache entries \(user and profile\) "
        r"equal the database ✓",
        out,
    )
    assert re.search(r"writer killed: [\d,]+ writes had returned, [\d,]+ users; lost: 0 ✓", out)
    assert re.search(r"hottest product: [\d.]+ h, coldest: [\d.]+ h ✓", out)
    assert "writes reached the other process's L1, which then read the last one" in out
    assert "all checks passed" in out


def test_demo_starts_its_own_server(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", *SMALL, "--only", "stampede"]) == 0  # the full demo runs below
    out = capsys.readouterr().out
    assert "fetches: 1 for 100 concurrent misses" in out and "all checks passed" in out
    assert "the bundled Valkey, started for this demo" in out


def test_demo_on_a_given_server(
    standalone_server: EmbeddedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    client = redis.Redis.from_url(standalone_server.url)
    client.set("unrelated", "kept")
    try:
        # Every section once, then the caches again: the second run must not read the first
        # run's cache entries (its figures would be wrong).
        assert main(["demo", "--url", standalone_server.url, *SMALL, "--seed", "3"]) == 0
        out = capsys.readouterr().out
        _check_demo_output(out)
        assert standalone_server.url in out
        again = ["demo", "--url", standalone_server.url, *SMALL, "--seed", "3", "--only", "caching"]
        assert main(again) == 0
        out = capsys.readouterr().out
        assert re.search(r"consistency: (\d+)/\1 updated users", out)
        assert out.count("(filled)") + out.count("(hit)") > 0
        assert client.get("unrelated") == b"kept"
        assert not list(client.scan_iter(match="redkit-demo*"))
    finally:
        client.delete("unrelated")
        client.close()


def test_unknown_command_exits_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bogus"]) != 0
    assert "usage: redkit" in capsys.readouterr().err


def test_no_command_exits_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: redkit" in capsys.readouterr().err


def test_bad_option_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--users", "0"]) == 2
    assert "--users" in capsys.readouterr().err


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_server_runs_until_stopped(stop: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "redkit.cli", "server"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.search(r"redis://\S+", first)
        assert match is not None, first
        client = redis.Redis.from_url(match.group(0))
        assert client.ping()
        proc.send_signal(stop)
        assert proc.wait(timeout=10) == 0
        with pytest.raises(redis.ConnectionError):  # the server stopped with the command
            client.ping()
        client.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

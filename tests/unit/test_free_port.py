"""Test servers' ports: free, and never from the range the kernel hands to port-0 binds."""

from __future__ import annotations

import itertools
import socket

import pytest

from loadtests import server


def test_ports_are_free_distinct_and_below_the_ephemeral_range():
    first_ephemeral = int(server.EPHEMERAL_PORTS.read_text().split()[0])
    ports = [server.free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert all(server.LOWEST_PORT <= port < first_ephemeral for port in ports)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports[0]))  # still free: only probed


def test_a_port_someone_holds_or_already_handed_out_is_skipped(monkeypatch):
    with socket.socket() as holder, socket.socket() as other:
        holder.bind(("127.0.0.1", 0))
        other.bind(("127.0.0.1", 0))
        held, free = holder.getsockname()[1], other.getsockname()[1]
        other.close()
        picks = itertools.chain([held], itertools.cycle([free, held]))
        monkeypatch.setattr(server._choose, "randrange", lambda *_: next(picks))
        monkeypatch.setattr(server, "_handed_out", set())
        assert server.free_port() == free  # after the held one
        with pytest.raises(RuntimeError, match="no free port"):
            server.free_port()  # only the handed-out one and the held one come up

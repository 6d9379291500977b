"""Port checks with real sockets: free or taken, and which process holds a taken one."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest
from testsupport import free_port

from helpers.host import ports


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_free_port_is_free():
    assert ports.is_free(free_port())


def test_a_listening_port_is_taken(listener):
    assert not ports.is_free(listener)
    assert not ports.is_free(listener, "0.0.0.0")


def test_the_holder_is_this_process(listener):
    found = ports.process_holders(listener)
    assert [h.pid for h in found] == [os.getpid()]
    import psutil

    assert found[0].kind == "process" and found[0].name == psutil.Process().name()
    assert "python" in found[0].cmdline


def test_no_holder_for_a_free_port():
    assert ports.process_holders(free_port()) == []


def test_describe_a_process_holder_with_next_steps(listener):
    problem, next_step = ports.describe_taken(
        listener, ports.process_holders(listener), "REDIS_PORT", "REDIS_URL"
    )
    assert f"port {listener} is taken by process" in problem and f"pid {os.getpid()}" in problem
    assert f"kill {os.getpid()}" in next_step and "REDIS_PORT" in next_step and "REDIS_URL" in next_step


def test_describe_known_servers_and_containers():
    pg = ports.Holder(kind="process", name="postgres", pid=812, cmdline="/usr/lib/postgresql/15/bin/postgres")
    assert "systemctl stop postgresql" in pg.next_step()
    rd = ports.Holder(kind="process", name="redis-server", pid=9)
    assert "redis-server" in rd.next_step()
    c = ports.Holder(kind="container", name="old-db", image="postgres:14")
    assert c.next_step() == "stop it: `docker stop old-db`" and "postgres:14" in c.describe()
    proj = ports.Holder(kind="container", name="x-postgres-1", image="p", project="x", service="postgres")
    assert "docker compose -p x stop" in proj.next_step() and "compose project `x`" in proj.describe()


def test_describe_an_unidentified_listener():
    problem, next_step = ports.describe_taken(5432, [])
    assert "unidentified" in problem and "ss -ltnp" in next_step

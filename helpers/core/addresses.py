"""Where a server's port is reached from this machine: at its own address, or through a forward.

The runbook talks to a server's ports at the server's address: Coolify's dashboard on ``<droplet>:8000``,
the web app on ``<droplet>:3000``. When such a port is reachable only through a forward (an SSH tunnel
such as ``ssh -L 18000:localhost:8000 deploy@203.0.113.7``, or a port that Docker publishes on
127.0.0.1), ``RUNBOOK_ADDRESS_MAP`` says where, one ``host:port=local_host:local_port`` per entry,
comma-separated::

    RUNBOOK_ADDRESS_MAP=203.0.113.7:8000=127.0.0.1:18000,203.0.113.7:3000=127.0.0.1:13000

A port without an entry is reached at its own address. SSH itself is not mapped: its host and port are
task 2.2's record (or ``RUNBOOK_DROPLET_HOST`` / ``RUNBOOK_SSH_PORT``).
"""

from __future__ import annotations

from helpers.core.settings import SettingError, env

Address = tuple[str, int]


def _address(text: str, entry: str) -> Address:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingError(
            f"RUNBOOK_ADDRESS_MAP entry {entry!r}: write host:port=local_host:local_port, "
            "e.g. 203.0.113.7:8000=127.0.0.1:18000"
        )
    return host.strip("[]"), int(port)


def parse(text: str) -> dict[Address, Address]:
    """``"a:1=b:2,c:3=d:4"`` → ``{("a", 1): ("b", 2), ("c", 3): ("d", 4)}``; a clear error when malformed."""
    mapping: dict[Address, Address] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        source, sep, target = entry.partition("=")
        if not sep:
            _address("", entry)  # raises with the example
        mapping[_address(source, entry)] = _address(target, entry)
    return mapping


def reach(host: str, port: int) -> Address:
    """Where ``host:port`` is reached from here: its forward in ``RUNBOOK_ADDRESS_MAP``, else itself."""
    return parse(env.address_map).get((host, int(port)), (host, int(port)))


def http_url(host: str, port: int) -> str:
    """``http://<where host:port is reached>`` (no trailing slash)."""
    there, local = reach(host, port)
    shown = f"[{there}]" if ":" in there else there
    return f"http://{shown}:{local}"

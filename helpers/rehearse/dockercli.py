"""A ``docker`` command for the rehearsal's droplet: ``docker inspect [-f FORMAT] NAME...`` over the socket.

The droplet stand-in has the host's Docker socket but no docker CLI (its image has no network to install
one). The rehearsal installer (``coolify-install.sh``) puts this module on the server as
``/usr/local/bin/docker``, so the runbook's commands on the server (task 2.18 reads the Redis container's
address with ``docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' <uuid>``;
task 2.5 probes ``docker inspect --format '{{.Config.Image}}' coolify``) run unchanged. Only ``inspect``
is known, and of Go's templates only field paths and ``range ... end``; anything else exits 2 and says so.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from typing import Any

from helpers.rehearse.dockerapi import Docker

FIELD = re.compile(r"\{\{\s*(\.[A-Za-z0-9_.]*)\s*\}\}")
RANGE = re.compile(r"\{\{\s*range\s+(\.[A-Za-z0-9_.]*)\s*\}\}(.*?)\{\{\s*end\s*\}\}", re.S)


class Unsupported(ValueError):
    pass


def lookup(context: Any, path: str) -> Any:
    value = context
    for part in [p for p in path.split(".") if p]:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def render(template: str, context: Any) -> str:
    """The subset of Go's text/template that ``docker inspect -f`` callers of the runbook use."""

    def each(m: re.Match[str]) -> str:
        items = lookup(context, m.group(1)) or {}
        values = items.values() if isinstance(items, dict) else items
        return "".join(render(m.group(2), item) for item in values)

    text = RANGE.sub(each, template)
    text = FIELD.sub(lambda m: _show(lookup(context, m.group(1))), text)
    if "{{" in text:
        raise Unsupported(f"template {template!r}: only {{{{.Field.Path}}}} and {{{{range}}}}...{{{{end}}}}")
    return text


def _show(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def main(argv: Sequence[str] | None = None, docker: Docker | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] != "inspect":
        known = "docker (rehearsal stand-in): only `docker inspect` is known"
        print(f"{known}, not {' '.join(args)!r}", file=sys.stderr)
        return 2
    args, template, names = args[1:], None, []
    while args:
        arg = args.pop(0)
        if arg in ("-f", "--format"):
            template = args.pop(0) if args else ""
        elif arg.startswith("--format="):
            template = arg.split("=", 1)[1]
        else:
            names.append(arg)
    docker = docker or Docker()
    code = 0
    found = []
    for name in names:
        info = docker.inspect(name)
        if info is None:
            print(f"Error: No such object: {name}", file=sys.stderr)
            code = 1
            continue
        found.append(info)
        if template is not None:
            try:
                print(render(template, info))
            except Unsupported as exc:
                print(f"docker (rehearsal stand-in): {exc}", file=sys.stderr)
                return 2
    if template is None:
        print(json.dumps(found, indent=4))
    return code


if __name__ == "__main__":
    raise SystemExit(main())

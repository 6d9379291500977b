"""Runs *inside* the reused kernel: a baseline snapshot, then a clean slate before each notebook.

The engine sends this file's source to the kernel once (as the module ``_runbook_kernel``; it is
not imported from the project, so resetting the project's modules never touches it). Before each
notebook, :func:`reset` puts back what a fresh kernel would have:

* the user namespace (IPython's ``reset``: variables, ``Out``, history; ``In [1]`` again);
* ``os.environ`` (the kernel's start environment plus the runner's per-notebook variables),
  the working directory, ``sys.path``, ``warnings`` filters, the root logger, the umask and the
  default socket timeout;
* the project's own modules (``helpers.*``, modules beside the notebooks: anything outside the
  Python installation and its site-packages) are dropped from ``sys.modules``, so each notebook
  imports them afresh and module-level state cannot leak.

What it cannot undo (the trade-off for a warm kernel, documented in the README): threads and
child processes a notebook leaves running (reported back as a warning), changes made to
third-party modules in memory (monkeypatching), and C-level state. A notebook that needs a
pristine process asks for one with ``"runbook": {"fresh_kernel": true}`` in its metadata.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import site
import socket
import sys
import sysconfig
import threading
import warnings

_baseline: dict = {}
last: dict = {}


def _system_prefixes() -> tuple[str, ...]:
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            paths.add(path)
    if hasattr(site, "getsitepackages"):  # virtualenv's old site module lacks it
        paths.update(site.getsitepackages())
    user = getattr(site, "USER_SITE", None)
    if user:
        paths.add(user)
    return tuple(sorted({os.path.realpath(p) + os.sep for p in paths}))


_local_files: dict[str, bool] = {}


def _is_local(module: object) -> bool:
    """A module that belongs to the project (not to Python or an installed package)."""
    path = getattr(module, "__file__", None)
    if not path or not isinstance(path, str):
        return False
    known = _local_files.get(path)
    if known is None:
        real = os.path.realpath(path)
        known = _local_files[path] = not real.startswith(_baseline.get("prefixes") or _system_prefixes())
    return known


def _drop_local_modules() -> list[str]:
    dropped = [name for name, mod in list(sys.modules.items()) if mod is not None and _is_local(mod)]
    for name in dropped:
        sys.modules.pop(name, None)
    importlib.invalidate_caches()
    return dropped


def warm(modules: list[str]) -> list[str]:
    """Import ``modules`` so the libraries they pull in are loaded once per kernel; returns failures."""
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    return failed


def snapshot() -> None:
    """Record the clean state (call once, right after the kernel started and warmed up)."""
    _baseline["prefixes"] = _system_prefixes()
    _drop_local_modules()
    _baseline.update(
        env=dict(os.environ),
        path=list(sys.path),
        warnings=list(warnings.filters),
        handlers=list(logging.root.handlers),
        level=logging.root.level,
        socket_timeout=socket.getdefaulttimeout(),
        threads={t.ident for t in threading.enumerate()},
    )
    mask = os.umask(0)
    os.umask(mask)
    _baseline["umask"] = mask


def reset(cwd: str, env: dict[str, str]) -> dict:
    """Clean slate for the next notebook; returns what could not be cleaned (for the runner's log)."""
    from IPython import get_ipython

    leftover = [
        t.name
        for t in threading.enumerate()
        if t.ident not in _baseline["threads"] and t.is_alive() and not t.daemon
    ]
    shell = get_ipython()
    if shell is not None:
        # IPython's reset ends with a full garbage collection (~0.1 s with the libraries loaded);
        # the cleared namespace is freed by reference counting, cycles by the collector later.
        collect, gc.collect = gc.collect, lambda *args, **kwargs: 0
        try:
            shell.reset(new_session=True)
        finally:
            gc.collect = collect
    os.environ.clear()
    os.environ.update(_baseline["env"])
    os.environ.update(env)
    sys.path[:] = _baseline["path"]
    dropped = _drop_local_modules()
    warnings.filters[:] = _baseline["warnings"]
    logging.root.handlers[:] = _baseline["handlers"]
    logging.root.setLevel(_baseline["level"])
    socket.setdefaulttimeout(_baseline["socket_timeout"])
    os.umask(_baseline["umask"])
    os.chdir(cwd)
    last.clear()
    last.update(leftover_threads=leftover, dropped_modules=len(dropped))
    return dict(last)

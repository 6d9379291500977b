"""Runs *inside* the reused kernel: a baseline snapshot, then a clean slate before each notebook.

The engine sends this file's source to the kernel once (as the module ``_runbook_kernel``; it is
not imported from the project, so resetting the project's modules never touches it). Before each
notebook, :func:`reset` puts back what a fresh kernel would have:

* the user namespace (IPython's ``reset``: variables, ``Out``, history; ``In [1]`` again);
* ``os.environ`` (the kernel's start environment plus the runner's per-notebook variables),
  the working directory, ``sys.path``, ``warnings`` filters, the root logger, the umask and the
  default socket timeout;
* the project's own modules (anything outside the Python installation and its site-packages:
  ``helpers.*``, modules beside the notebooks). Those imported at warm-up (the ones the phase's
  notebooks import) stay loaded, which is most of the speed-up, but each one's globals are
  fingerprinted (identity of every value, size of every dict/list/set): when a notebook rebinds,
  adds or grows anything at module level, every project module is dropped and imported afresh
  before the next notebook. Project modules first imported during a notebook (a module beside
  it, say) are always dropped. ``strict=True`` (``RUNBOOK_KERNEL_STRICT=1``) re-imports them all
  before every notebook.

What it cannot undo (the trade-off for a warm kernel, documented in the README): threads and
child processes a notebook leaves running (reported back as a warning), changes made to
third-party modules in memory (monkeypatching), in-place changes deeper than a module's top-level
containers (an attribute set on a class, an item changed inside a list), and C-level state. A
notebook that needs a pristine process asks for one with ``"runbook": {"fresh_kernel": true}``
in its metadata; ``runbook run --fresh-kernels`` gives every notebook its own kernel.
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
import types
import warnings

_baseline: dict = {}
_warm_list: list[str] = []
_modules: dict[str, tuple[object, tuple]] = {}  # project modules kept warm: name -> (module, fingerprint)
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


def _fingerprint(module: object) -> tuple:
    """Identity of every module-level value, and the size of every top-level container.

    A package's submodules are left out: importing ``helpers.core.display`` binds ``display`` in
    ``helpers.core``, which is no change of the package's state (the submodule has its own print).
    """
    items = []
    prefix = f"{getattr(module, '__name__', '')}."
    for key, value in list(vars(module).items()):
        if key.startswith("__") and key.endswith("__"):
            continue
        if isinstance(value, types.ModuleType) and value.__name__ == prefix + key:
            continue
        size = len(value) if isinstance(value, dict | list | set | bytearray) else -1
        items.append((key, id(value), size))
    items.sort()
    return tuple(items)


def _local_modules() -> list[str]:
    return [name for name, mod in list(sys.modules.items()) if mod is not None and _is_local(mod)]


def _record() -> None:
    _modules.clear()
    for name in _local_modules():
        _modules[name] = (sys.modules[name], _fingerprint(sys.modules[name]))


def _drop(name: str) -> None:
    """Forget a module: out of ``sys.modules``, and unbound from its package, as before its import."""
    module = sys.modules.pop(name, None)
    parent_name, _, child = name.rpartition(".")
    parent = sys.modules.get(parent_name)
    if parent is not None and module is not None and getattr(parent, child, None) is module:
        delattr(parent, child)


def _reset_modules(strict: bool) -> dict:
    """Drop the project modules a notebook imported or changed; re-import the warm ones if needed.

    A module of the warm packages that a notebook imported first (a helper's import inside a function,
    say) is dropped, then imported afresh here and kept warm from now on: the next notebooks find it
    loaded and pristine instead of importing it again each time. Other new modules (one beside the
    notebook) are only dropped.
    """
    changed = [
        name
        for name, (mod, fp) in _modules.items()
        if sys.modules.get(name) is not mod or _fingerprint(mod) != fp
    ]
    new = [name for name in _local_modules() if name not in _modules]
    for name in sorted(new, key=lambda n: -n.count(".")):
        _drop(name)
    packages = {name.partition(".")[0] for name in _warm_list}
    adopted = [name for name in new if name.partition(".")[0] in packages and name not in _warm_list]
    _warm_list.extend(adopted)
    if changed or strict:
        for name in sorted(_local_modules(), key=lambda n: -n.count(".")):
            _drop(name)
        importlib.invalidate_caches()
        _import_all(_warm_list)
        _record()
    elif new:
        importlib.invalidate_caches()
        if adopted:
            _import_all(adopted)
            _record()
    return {
        "new_modules": len(new),
        "adopted_modules": len(adopted),
        "changed_modules": changed[:20],
        "reimported": bool(changed or strict),
    }


def warm(modules: list[str]) -> list[str]:
    """Import ``modules`` so the libraries they pull in are loaded once per kernel; returns failures."""
    _warm_list[:] = modules
    return _import_all(modules)


def _import_all(modules: list[str]) -> list[str]:
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
    _record()
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


def reset(cwd: str, env: dict[str, str], strict: bool = False) -> dict:
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
    os.chdir(cwd)
    modules = _reset_modules(strict)
    warnings.filters[:] = _baseline["warnings"]
    logging.root.handlers[:] = _baseline["handlers"]
    logging.root.setLevel(_baseline["level"])
    socket.setdefaulttimeout(_baseline["socket_timeout"])
    os.umask(_baseline["umask"])
    last.clear()
    last.update(leftover_threads=leftover, **modules)
    return dict(last)

"""Where the runner's kernels put their Unix sockets (helpers.runner.kernel.socket_folder)."""

from __future__ import annotations

import os
import stat
import tempfile

from helpers.runner import kernel


def test_the_socket_folder_is_private_and_short_enough(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    folder = kernel.socket_folder()
    assert folder is not None and os.path.dirname(folder) == str(tmp_path)
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert len(os.path.join(folder, "k-99")) <= kernel.SOCKET_PATH_MAX


def test_a_temporary_folder_too_deep_for_socket_paths_means_tcp_and_leaves_nothing(
    tmp_path, monkeypatch
) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    assert kernel.socket_folder() is None
    assert list(deep.iterdir()) == []

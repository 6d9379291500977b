"""helpers.app.appfiles: app_dir validation, the file tree, planned changes, the compose file (task 1.7)."""

from __future__ import annotations

import shutil

import pytest
from testsupport import needs

from helpers.app import appfiles
from helpers.app.appfiles import AppDirError, FileChange, Tree
from helpers.core.checks import Checklist

# --------------------------------------------------------------------------- bad input


def test_empty_app_dir_says_what_to_set():
    with pytest.raises(AppDirError, match="RUNBOOK_APP_DIR"):
        appfiles.resolve_app_dir("")
    with pytest.raises(AppDirError, match="app_dir is empty"):
        appfiles.resolve_app_dir("   ")


def test_missing_app_dir_names_the_path_and_the_next_step(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(AppDirError) as err:
        appfiles.resolve_app_dir(str(missing))
    assert str(missing) in str(err.value)
    assert "does not exist" in str(err.value) and "clone" in str(err.value)


def test_a_file_is_not_an_app_dir(tmp_path):
    f = tmp_path / "package.json"
    f.write_text("{}")
    with pytest.raises(AppDirError, match="is a file"):
        appfiles.resolve_app_dir(f)


def test_folder_without_package_json_is_not_the_app(tmp_path):
    (tmp_path / "README.md").write_text("# hello\n")
    with pytest.raises(AppDirError, match=r"no package\.json") as err:
        appfiles.resolve_app_dir(tmp_path)
    assert "repository's root" in str(err.value)


def test_app_dir_resolves_to_absolute(app_copy, monkeypatch):
    monkeypatch.chdir(app_copy.parent)
    assert appfiles.resolve_app_dir("app") == app_copy.resolve()


# --------------------------------------------------------------------------- text and the tree


def test_read_write_keep_crlf_and_missing_final_newline(tmp_path):
    path = tmp_path / "a.txt"
    text = "one\r\ntwo\r\nthree"
    appfiles.write_text(path, text)
    assert path.read_bytes() == b"one\r\ntwo\r\nthree"
    assert appfiles.read_text(path) == text
    assert appfiles.newline_of(text) == "\r\n"
    assert appfiles.newline_of("a\nb\n") == "\n"
    assert appfiles.with_newlines("a\nb\n", "\r\n") == "a\r\nb\r\n"


def test_binary_and_missing_files_read_as_none(tmp_path):
    (tmp_path / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    assert appfiles.read_text(tmp_path / "img.png") is None
    assert appfiles.read_text(tmp_path / "latin1.txt") is None
    assert appfiles.read_text(tmp_path / "absent") is None


def test_tree_lists_tracked_and_untracked_but_not_ignored(app_copy):
    (app_copy / ".env").write_text("SECRET=1\n")  # ignored by the app's .gitignore
    (app_copy / "node_modules" / "x").mkdir(parents=True)
    (app_copy / "node_modules" / "x" / "index.js").write_text("// multipass\n")
    (app_copy / "notes.md").write_text("untracked\n")
    (app_copy / "logo.png").write_bytes(b"\x89PNG\0\0")
    tree = Tree(app_copy)
    files = tree.files()
    assert "package.json" in files and "notes.md" in files and "docs/vm-setup.md" in files
    assert ".env" not in files
    assert not [f for f in files if f.startswith("node_modules/")]
    text_files = dict(tree.text_files())
    assert "logo.png" not in text_files and "notes.md" in text_files
    assert tree.is_ignored(".env") is True
    assert tree.is_ignored("README.md") is False


def test_tree_outside_git_walks_and_skips_dependency_folders(tmp_path):
    (tmp_path / "package.json").write_text("{}\n")
    (tmp_path / "node_modules" / "a").mkdir(parents=True)
    (tmp_path / "node_modules" / "a" / "b.js").write_text("x\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.ts").write_text("x\n")
    tree = Tree(tmp_path)
    assert tree.files() == ["package.json", "src/a.ts"]
    assert tree.committed("package.json") is None
    assert tree.is_ignored("package.json") is None


def test_tree_overlay_answers_as_if_the_plan_was_applied(app_copy):
    plan = [
        FileChange("docs/vm-setup.md", "old", None),
        FileChange("new.txt", None, "hello\n"),
        FileChange("README.md", "x", "planned readme\n"),
    ]
    tree = Tree(app_copy, planned=plan)
    assert tree.is_preview
    assert not tree.exists("docs/vm-setup.md") and "docs/vm-setup.md" not in tree.files()
    assert tree.read("new.txt") == "hello\n" and "new.txt" in tree.files()
    assert tree.read("README.md") == "planned readme\n"
    assert (app_copy / "docs" / "vm-setup.md").exists(), "the overlay never touches the disk"
    assert tree.committed("README.md").startswith("# demo-app")


def test_committed_reads_head_not_the_working_tree(app_copy):
    (app_copy / "README.md").write_text("changed\n")
    assert Tree(app_copy).committed("README.md").startswith("# demo-app")
    assert Tree(app_copy).committed("does-not-exist.md") is None


# --------------------------------------------------------------------------- apply


def test_apply_reports_ok_changed_and_would_change(tmp_path):
    (tmp_path / "same.txt").write_text("same\n")
    (tmp_path / "old.txt").write_text("old\n")
    (tmp_path / "gone" / "deep").mkdir(parents=True)
    (tmp_path / "gone" / "deep" / "x.md").write_text("bye\n")
    changes = [
        FileChange("same.txt", "same\n", "same\n"),
        FileChange("old.txt", "old\n", "new\n"),
        FileChange("dir/created.txt", None, "created\n"),
        FileChange("gone/deep/x.md", "bye\n", None),
    ]
    planned = appfiles.apply(tmp_path, changes, dry_run=True)
    assert [r.status for r in planned] == ["ok", "would change", "would change", "would change"]
    assert (tmp_path / "old.txt").read_text() == "old\n" and not (tmp_path / "dir").exists()
    assert (tmp_path / "gone" / "deep" / "x.md").exists()
    assert "-old" in planned[1].diff and "+new" in planned[1].diff

    done = appfiles.apply(tmp_path, changes)
    assert [r.status for r in done] == ["ok", "changed", "changed", "changed"]
    assert [r.name for r in done] == [
        "update same.txt",
        "update old.txt",
        "create dir/created.txt",
        "delete gone/deep/x.md",
    ]
    assert (tmp_path / "old.txt").read_text() == "new\n"
    assert (tmp_path / "dir" / "created.txt").read_text() == "created\n"
    assert not (tmp_path / "gone").exists(), "emptied folders are removed"


def test_apply_with_nothing_to_do_still_reports_ok(tmp_path):
    assert [(r.status, r.detail) for r in appfiles.apply(tmp_path, [])] == [("ok", "nothing to change")]


def test_apply_hides_diffs_of_secret_files_and_masks_url_passwords(tmp_path):
    secret = FileChange(".env", None, "DATABASE_URL=postgresql://u:hunter22@localhost/app\n", show_diff=False)
    public = FileChange("x.env.example", "", "DATABASE_URL=postgresql://u:hunter22@localhost/app\n")
    hidden, shown = appfiles.apply(tmp_path, [secret, public], dry_run=True)
    assert hidden.diff == "" and "not shown" in hidden.detail
    assert "hunter22" not in shown.diff and "[REDACTED]" in shown.diff


def test_unified_diff_marks_a_missing_final_newline():
    diff = appfiles.unified_diff("a\nb", "a\nc", "f.txt")
    assert diff.splitlines()[:2] == ["--- a/f.txt", "+++ b/f.txt"]
    assert "\\ No newline at end of file" in diff
    assert appfiles.unified_diff(None, "x\n", "n.txt").startswith("--- /dev/null")


def test_view_is_the_disk_unless_dry_run(app_copy):
    plan = [FileChange("README.md", None, "planned\n")]
    assert appfiles.view(app_copy, plan, dry_run=False).read("README.md").startswith("# demo-app")
    assert appfiles.view(app_copy, plan, dry_run=True).read("README.md") == "planned\n"
    assert appfiles.titled("T", True).endswith("(dry run: the planned files)")
    assert appfiles.titled("T", False) == "T"


# --------------------------------------------------------------------------- task 1.7


def _checks(fn, *args) -> Checklist:
    check = Checklist("t")
    fn(check, *args)
    return check


def test_compose_copied_then_ok(app_copy):
    changes, extra = appfiles.plan_compose(app_copy)
    assert extra == [] and changes[0].action == "create"
    assert [r.status for r in appfiles.apply(app_copy, changes)] == ["changed"]
    assert (app_copy / "docker-compose.yml").read_bytes() == appfiles.COMPOSE_SOURCE.read_bytes()
    again, _ = appfiles.plan_compose(app_copy)
    assert [r.status for r in appfiles.apply(app_copy, again)] == ["ok"]
    check = _checks(appfiles.check_compose_file, app_copy)
    assert not check.failures, check.failures
    assert len(check.results) >= 12


def test_different_compose_is_kept_without_overwrite(app_copy):
    own = "services:\n  db:\n    image: mysql:8\n"
    (app_copy / "docker-compose.yml").write_text(own)
    changes, extra = appfiles.plan_compose(app_copy)
    assert changes == []
    assert extra[0].status == "skipped" and "overwrite=True" in extra[0].detail
    assert "-    image: mysql:8" in extra[0].diff
    assert (app_copy / "docker-compose.yml").read_text() == own
    failed = {r.name for r in _checks(appfiles.check_compose_file, app_copy).failures}
    assert "same as the runbook's docker-compose.yml (with the app's defaults)" in failed
    assert "a postgres service" in failed

    changes, extra = appfiles.plan_compose(app_copy, overwrite=True)
    appfiles.apply(app_copy, changes)
    assert (app_copy / "docker-compose.yml").read_bytes() == appfiles.COMPOSE_SOURCE.read_bytes()


def test_missing_runbook_compose_is_a_clear_error(app_copy, tmp_path):
    with pytest.raises(FileNotFoundError, match="restore it"):
        appfiles.plan_compose(app_copy, source=tmp_path / "nope.yml")


def test_compose_check_fails_on_public_ports_and_missing_healthcheck(app_copy):
    bad = (
        "services:\n"
        "  postgres:\n    image: postgres:15\n    ports: ['5432:5432']\n"
        "    volumes: ['./data:/var/lib/postgresql/data']\n"
        "  redis:\n    image: redis:6\n    ports: ['127.0.0.1:6379:6379']\n"
    )
    (app_copy / "docker-compose.yml").write_text(bad)
    failed = {r.name for r in _checks(appfiles.check_compose_file, app_copy).failures}
    assert "postgres: port 5432 published on 127.0.0.1 only" in failed
    assert "postgres: has a healthcheck" in failed
    assert "postgres: data on a named volume" in failed
    assert "redis: image redis 7" in failed
    assert "postgres: image postgres 15" not in failed


@needs(shutil.which("docker") is not None, "docker CLI not installed")
def test_compose_config_rejects_an_invalid_file(app_copy):
    (app_copy / "docker-compose.yml").write_text("services:\n  a:\n    image: 1\n")
    tree = Tree(app_copy)
    with pytest.raises(RuntimeError, match="image"):
        appfiles.compose_config_ok(tree)
    (app_copy / "docker-compose.yml").write_bytes(appfiles.COMPOSE_SOURCE.read_bytes())
    assert appfiles.compose_config_ok(tree) == "valid"


def test_compose_check_of_absent_file_fails_once(app_copy):
    check = _checks(appfiles.check_compose_file, app_copy)
    assert [r.name for r in check.results] == ["docker-compose.yml exists in the app"]
    assert check.failures

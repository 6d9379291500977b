"""Failure summaries link the troubleshooting section of the failed task."""

from __future__ import annotations

from helpers.runner.report import troubleshooting_link


def test_link_prefers_the_published_site(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNBOOK_DOCS_URL", "https://runbook.example.org/")
    assert troubleshooting_link("1.4", tmp_path / "runs" / "r", tmp_path) == (
        "https://runbook.example.org/troubleshooting/#task-1-4"
    )


def test_link_uses_the_built_site_when_there_else_the_source(tmp_path, monkeypatch):
    monkeypatch.delenv("RUNBOOK_DOCS_URL", raising=False)
    run_dir = tmp_path / "runs" / "20261123-phase1"
    run_dir.mkdir(parents=True)
    assert troubleshooting_link("2.13", run_dir, tmp_path) == "../../docs/troubleshooting.md#task-2-13"
    built = tmp_path / "site" / "troubleshooting" / "index.html"
    built.parent.mkdir(parents=True)
    built.write_text("<html></html>")
    link = troubleshooting_link("2.13", run_dir, tmp_path)
    assert link == "../../site/troubleshooting/index.html#task-2-13"

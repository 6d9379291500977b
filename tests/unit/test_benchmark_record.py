"""README's speed tables are the benchmarks' records, copied by ``benchmarks/record.py``, never typed."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from testsupport import ROOT


@pytest.fixture(scope="module")
def record():
    spec = importlib.util.spec_from_file_location("benchmark_record", ROOT / "benchmarks" / "record.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_readme_shows_each_record_s_summary_unchanged(record):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in record.NAMES:
        path = record.record_path(name)
        assert path.is_file(), f"{path} is missing: run benchmarks/{name}.py"
        summary = record.summary_of(path.read_text(encoding="utf-8"))
        assert summary.startswith("Measured "), f"{path} has no summary with its date and machine"
        assert "load average" in summary and "Docker Engine" in summary and "cores" in summary
        assert record.readme_block(readme, name) == summary, (
            f"README.md's {name} table is not {path.name}'s: run .venv/bin/python benchmarks/record.py"
        )


def test_a_stale_readme_is_rewritten_from_the_record_and_the_check_fails(record):
    readme = (
        "intro\n<!-- benchmark:phase1:start -->\n| typed | 1.0 s |\n<!-- benchmark:phase1:end -->\nrest\n"
    )
    text = "# t\n\n<!-- summary:start -->\nMeasured today\n\n| m | 2.0 s |\n<!-- summary:end -->\n\nmore\n"
    after = record.synced(readme, {"phase1": text})
    assert after == (
        "intro\n<!-- benchmark:phase1:start -->\nMeasured today\n\n| m | 2.0 s |\n"
        "<!-- benchmark:phase1:end -->\nrest\n"
    )
    assert record.readme_block(after, "phase1") == record.summary_of(text)
    assert record.synced(after, {"phase1": text}) == after  # a second pass changes nothing
    assert record.readme_block(readme, "phase2") is None  # no markers: nothing to fill


def test_the_check_command_fails_when_readme_differs(record, monkeypatch, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- benchmark:phase1:start -->\nold\n<!-- benchmark:phase1:end -->\n")
    monkeypatch.setattr(record, "README", readme)
    monkeypatch.setattr(
        record, "records", lambda: {"phase1": "<!-- summary:start -->\nnew\n<!-- summary:end -->"}
    )
    assert record.main(["--check"]) == 1
    assert record.main([]) == 0
    assert record.main(["--check"]) == 0
    assert "new" in readme.read_text()


@pytest.fixture(scope="module")
def healthcheck():
    spec = importlib.util.spec_from_file_location(
        "benchmark_healthcheck", ROOT / "benchmarks" / "healthcheck.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_healthcheck_benchmark_changes_only_the_interval_of_the_project_s_compose_file(
    healthcheck, tmp_path
):
    import yaml

    ours = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    variant = yaml.safe_load(healthcheck.compose_with_interval("250ms", tmp_path).read_text(encoding="utf-8"))
    probed = [name for name, body in ours["services"].items() if "healthcheck" in body]
    assert probed == ["postgres", "redis"]
    for name in probed:
        assert variant["services"][name]["healthcheck"]["interval"] == "250ms"
        variant["services"][name]["healthcheck"]["interval"] = ours["services"][name]["healthcheck"][
            "interval"
        ]
    assert variant == ours
    assert (ROOT / "benchmarks" / "healthcheck.md").is_file(), "run benchmarks/healthcheck.py"

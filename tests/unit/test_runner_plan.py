"""Run order, parallel groups and selection: from the real registry and from synthetic task lists."""

from __future__ import annotations

import pytest

from helpers.core import tasks
from helpers.core.tasks import RegistryError, Task
from helpers.runner import catalog as C
from helpers.runner.demo import DemoTask, write_phase
from helpers.runner.plan import Selection, SelectionError, levels, make_plan, order


@pytest.mark.parametrize("phase", ["phase1", "phase2"])
def test_order_and_groups_equal_the_registry(phase: str) -> None:
    catalog = C.from_registry()
    mine = order(catalog.in_phase(phase))
    assert [t.id for t in mine] == [t.id for t in tasks.order(phase)]
    assert [[t.id for t in g] for g in levels(catalog.in_phase(phase))] == [
        [t.id for t in g] for g in tasks.levels(phase)
    ]


def test_phase1_order_respects_every_dependency_and_has_the_documented_shape() -> None:
    plan = make_plan("phase1", C.from_registry().in_phase("phase1"))
    ids = [t.id for t in plan.tasks]
    for task in plan.tasks:
        for dep in plan.needs(task.id):
            assert ids.index(dep) < ids.index(task.id), (dep, task.id)
    assert ids[:4] == ["1.1", "1.2", "1.3", "1.7"]
    assert ids[-2:] == ["1.14", "1.15"]
    groups = [[t.id for t in g] for g in plan.groups]
    # 1.7 -> 1.8, 1.9, 1.10, 1.11, 1.13, 1.4 can run side by side
    after_compose = next(g for g in groups if "1.8" in g)
    assert {"1.4", "1.8", "1.9", "1.10", "1.11", "1.13"} <= set(after_compose)
    assert plan.group_of("1.14") == len(groups) - 1


def test_phase2_parallel_group_is_2_9_to_2_12() -> None:
    plan = make_plan("phase2", C.from_registry().in_phase("phase2"))
    group = next(g for g in plan.groups if any(t.id == "2.9" for t in g))
    assert [t.id for t in group] == ["2.9", "2.10", "2.11", "2.12"]
    # 2.1 needs 1.15, which is outside phase 2: ignored for ordering inside the phase
    assert plan.needs("2.1") == []


def _synthetic() -> list[Task]:
    return [
        Task("1.1", "a", "A", "automated", ()),
        Task("1.2", "b", "B", "manual", ("1.1",)),
        Task("1.10", "j", "J", "automated", ("1.2",)),
        Task("1.9", "i", "I", "docs", ("1.2",)),
        Task("1.11", "k", "K", "automated", ("1.9", "1.10")),
    ]


def test_order_on_a_synthetic_list_sorts_ids_numerically() -> None:
    assert [t.id for t in order(_synthetic())] == ["1.1", "1.2", "1.9", "1.10", "1.11"]
    assert [[t.id for t in g] for g in levels(_synthetic())] == [["1.1"], ["1.2"], ["1.9", "1.10"], ["1.11"]]


def test_cycle_is_an_error() -> None:
    cyclic = [Task("1.1", "a", "A", "automated", ("1.2",)), Task("1.2", "b", "B", "automated", ("1.1",))]
    with pytest.raises(RegistryError, match="cycle"):
        order(cyclic)


def test_from_and_to_cut_the_run_order_inclusively() -> None:
    plan = make_plan("phase1", _synthetic(), Selection(start="1.2", stop="1.10"))
    assert plan.selected == ["1.2", "1.9", "1.10"]
    assert make_plan("phase1", _synthetic(), Selection(start="1.10")).selected == ["1.10", "1.11"]
    assert make_plan("phase1", _synthetic(), Selection(stop="1.2")).selected == ["1.1", "1.2"]


def test_only_keeps_run_order() -> None:
    plan = make_plan("phase1", _synthetic(), Selection(only=("1.11", "1.1")))
    assert plan.selected == ["1.1", "1.11"]
    assert plan.selection.describe() == "--only 1.11 1.1"


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (Selection(start="1.7"), "has no task 1.7"),
        (Selection(only=("2.1",)), "has no task 2.1"),
        (Selection(start="1.11", stop="1.2"), "comes after"),
        (Selection(start="1.1", only=("1.2",)), "cannot be combined"),
    ],
)
def test_bad_selections_say_what_is_wrong(selection: Selection, message: str) -> None:
    with pytest.raises(SelectionError, match=message) as err:
        make_plan("phase1", _synthetic(), selection)
    if "has no task" in message:
        assert "1.1, 1.2, 1.9, 1.10, 1.11" in str(err.value)  # the real ids, in run order


def test_downstream() -> None:
    plan = make_plan("phase1", _synthetic())
    assert plan.downstream("1.9") == {"1.11"}
    assert plan.downstream("1.1") == {"1.2", "1.9", "1.10", "1.11"}


def test_registry_file_catalog(tmp_path) -> None:
    registry = write_phase(
        tmp_path, [DemoTask("1.1", "x", "automated", [], "X"), DemoTask("1.2", "y", "manual", ["1.1"], "Y")]
    )
    catalog = C.from_file(registry)
    assert [t.id for t in catalog.in_phase("phase1")] == ["1.1", "1.2"]
    assert catalog.notebook(catalog.get("1.2")) == tmp_path / "notebooks/phase1/1.02-y.ipynb"
    assert catalog.notebook(catalog.get("1.2")).is_file()


def test_registry_file_with_unknown_dependency_is_refused(tmp_path) -> None:
    path = tmp_path / "tasks.yaml"
    path.write_text(
        "phases: {phase1: {title: T, success: S}}\n"
        "tasks:\n  - {id: '1.1', slug: a, kind: automated, title: A, needs: ['1.9']}\n"
    )
    with pytest.raises(RegistryError, match=r"needs 1\.9"):
        C.from_file(path)
    path.write_text(
        "phases: {phase1: {title: T, success: S}}\n"
        "tasks:\n  - {id: '1.1', slug: a, kind: robot, title: A, needs: []}\n"
    )
    with pytest.raises(RegistryError, match="kind 'robot'"):
        C.from_file(path)


def test_default_catalog_follows_the_environment(tmp_path, monkeypatch) -> None:
    registry = write_phase(tmp_path)
    monkeypatch.setenv("RUNBOOK_REGISTRY", str(registry))
    assert C.default().source == str(registry)
    monkeypatch.delenv("RUNBOOK_REGISTRY")
    assert len(C.default().tasks) == len(tasks.all_tasks())

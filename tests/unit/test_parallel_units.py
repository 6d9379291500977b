"""How the suite is cut for pytest-xdist (conftest.py `work_unit`, tests/testsupport.py `slow_first`)."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from testsupport import ROOT


@pytest.fixture(scope="module")
def root_conftest():
    spec = importlib.util.spec_from_file_location("_runbook_root_conftest", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_notebook_cell_is_one_unit_unit_tests_stand_alone_other_tests_go_by_module(root_conftest):
    unit = root_conftest.work_unit
    cells = [
        "notebooks/phase1/1.01-remove-multipass-vm.ipynb::Cell 0",
        "notebooks/phase1/1.15-end-to-end-test.ipynb::Cell 7",
    ]
    assert {unit(c) for c in cells} == {root_conftest.NOTEBOOKS_UNIT}
    a, b = "tests/unit/test_ports.py::test_a", "tests/unit/test_ports.py::test_b[1]"
    assert (unit(a), unit(b)) == (a, b)
    x, y = (
        "tests/integration/test_examples.py::test_example_runs_as_documented[make test]",
        ("tests/integration/test_examples.py::test_the_run_check_fails_on_a_wrong_parameter"),
    )
    assert unit(x) == unit(y) == "tests/integration/test_examples.py"
    assert unit("tests/browser/test_site.py::TestNav::test_x") == "tests/browser/test_site.py"


class _Item:
    def __init__(self, name: str, slow: bool = False):
        self.name, self.path, self.slow = name, f"/p/{name}", slow

    def get_closest_marker(self, name: str):
        return object() if name == "slow" and self.slow else None


def test_slow_tests_and_notebooks_go_first_and_each_part_keeps_its_order():
    from testsupport import slow_first

    items = [_Item("a.py"), _Item("s1.py", slow=True), _Item("b.py"), _Item("nb.ipynb"), _Item("s2.py", True)]
    slow_first(items)
    assert [i.name for i in items] == ["s1.py", "nb.ipynb", "s2.py", "a.py", "b.py"]

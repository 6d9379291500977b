"""helpers.app.packagejson: adding the docker scripts without moving anything else (task 1.8)."""

from __future__ import annotations

import json
import subprocess

import pytest

from helpers.app import appfiles, packagejson
from helpers.app.packagejson import DOCKER_SCRIPTS, PackageJsonError
from helpers.core.checks import Checklist

NPM = '{\n  "name": "x",\n  "scripts": {\n    "dev": "next dev"\n  },\n  "files": ["dist"]\n}\n'


def _added(text: str) -> str:
    new, _ = packagejson.add_scripts(text, DOCKER_SCRIPTS)
    return new


def _docker_lines(indent: str, nl: str = "\n") -> str:
    return "".join(f',{nl}{indent}"{k}": "{v}"' for k, v in DOCKER_SCRIPTS.items())


def test_npm_style_two_spaces_and_hand_formatted_array_kept():
    new = _added(NPM)
    assert new == NPM.replace('"next dev"', '"next dev"' + _docker_lines("    "))
    assert '"files": ["dist"]' in new, "a hand-formatted array is not reflowed"
    assert list(json.loads(new)["scripts"]) == ["dev", *DOCKER_SCRIPTS]


def test_four_spaces():
    text = json.dumps({"name": "x", "scripts": {"dev": "d"}}, indent=4) + "\n"
    new = _added(text)
    assert new == json.dumps({"name": "x", "scripts": {"dev": "d", **DOCKER_SCRIPTS}}, indent=4) + "\n"
    assert packagejson.indent_unit(new) == "    "


def test_tabs_crlf_and_no_final_newline():
    text = '{\r\n\t"name": "x",\r\n\t"scripts": {\r\n\t\t"dev": "d"\r\n\t}\r\n}'
    new = _added(text)
    assert new == text.replace('"d"', '"d"' + _docker_lines("\t\t", "\r\n"))
    assert not new.endswith("\n") and "\n" not in new.replace("\r\n", "")
    assert packagejson.indent_unit(new) == "\t"


def test_compact_one_line_file():
    text = '{"name":"x","scripts":{"dev":"d"}}'
    new = _added(text)
    assert "\n" not in new and new.startswith('{"name":"x","scripts":{"dev":"d","docker:up":')
    assert json.loads(new)["scripts"]["docker:ps"] == "docker compose ps"


def test_empty_and_missing_scripts():
    empty = '{\n  "name": "x",\n  "scripts": {}\n}\n'
    new = _added(empty)
    assert new.startswith(
        '{\n  "name": "x",\n  "scripts": {\n    "docker:up": "docker compose up -d --wait",\n'
    )
    assert new.endswith('"\n  }\n}\n')
    missing = '{\n  "name": "x",\n  "version": "1.0.0"\n}\n'
    new = _added(missing)
    assert new == json.dumps({"name": "x", "version": "1.0.0", "scripts": DOCKER_SCRIPTS}, indent=2) + "\n"


def test_unicode_and_escapes_survive():
    text = (
        '{\n  "description": "Caf\\u00e9 \\"demo\\" – ünïcode",\n'
        '  "scripts": {\n    "a": "echo \\"hi\\""\n  }\n}\n'
    )
    new = _added(text)
    assert new.startswith(text[: text.index('"a"')]), "the existing bytes before the insert are untouched"
    assert json.loads(new)["description"] == 'Café "demo" – ünïcode'


def test_conflicts_are_kept_unless_overwrite():
    text = NPM.replace('"dev": "next dev"', '"dev": "next dev",\n    "docker:up": "docker-compose up"')
    new, report = packagejson.add_scripts(text, DOCKER_SCRIPTS)
    assert report["conflicts"] == ["docker:up"] and "docker:up" not in report["added"]
    assert json.loads(new)["scripts"]["docker:up"] == "docker-compose up"
    new, report = packagejson.add_scripts(text, DOCKER_SCRIPTS, overwrite=True)
    assert report["replaced"] == ["docker:up"]
    scripts = json.loads(new)["scripts"]
    assert scripts["docker:up"] == DOCKER_SCRIPTS["docker:up"]
    assert list(scripts)[:2] == ["dev", "docker:up"], "a replaced script keeps its place"


def test_second_run_changes_nothing():
    once = _added(NPM)
    twice, report = packagejson.add_scripts(once, DOCKER_SCRIPTS)
    assert twice == once and report["same"] == list(DOCKER_SCRIPTS) and not report["added"]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            '{\n  "name": "x",\n  "scripts": {\n    "dev": "d",\n  }\n}\n',
            "line 5, column 3",
        ),  # trailing comma
        ('{\n  "name": "x"\n  "version": "1"\n}\n', "line 3, column 3"),  # missing comma
        ("", "line 1, column 1"),
    ],
)
def test_malformed_json_says_where_and_what_next(text, where):
    with pytest.raises(PackageJsonError) as err:
        packagejson.parse(text, "package.json")
    message = str(err.value)
    assert where in message and "Next step" in message and "node -e" in message


def test_not_an_object_and_bad_scripts():
    with pytest.raises(PackageJsonError, match="JSON object"):
        packagejson.parse("[1, 2]")
    with pytest.raises(PackageJsonError, match="object of strings"):
        packagejson.parse('{"scripts": {"a": 1}}')


def test_byte_order_mark_is_accepted_and_kept():
    text = "\ufeff" + NPM
    new = _added(text)
    assert (
        new.startswith("\ufeff{") and json.loads(new[1:])["scripts"]["docker:down"] == "docker compose down"
    )


@pytest.mark.parametrize(
    ("drop", "want"),
    [
        ({"a"}, '{\n  "scripts": {\n    "b": "2",\n    "c": "3"\n  }\n}\n'),
        ({"b"}, '{\n  "scripts": {\n    "a": "1",\n    "c": "3"\n  }\n}\n'),
        ({"c"}, '{\n  "scripts": {\n    "a": "1",\n    "b": "2"\n  }\n}\n'),
        ({"a", "b", "c"}, '{\n  "scripts": {}\n}\n'),
    ],
)
def test_remove_scripts(drop, want):
    text = '{\n  "scripts": {\n    "a": "1",\n    "b": "2",\n    "c": "3"\n  }\n}\n'
    new, names = packagejson.remove_scripts(text, lambda name, _cmd: name in drop)
    assert new == want and set(names) == drop


# --------------------------------------------------------------------------- task 1.8 on the fixture


def test_plan_and_check_on_the_sample_app(app_copy):
    changes, kept = packagejson.plan_docker_scripts(app_copy)
    assert kept == [] and "added docker:up" in changes[0].why
    appfiles.apply(app_copy, changes)
    again, _ = packagejson.plan_docker_scripts(app_copy)
    assert not again[0].needed
    check = Checklist("1.8")
    packagejson.check_docker_scripts(check, app_copy)
    assert not check.failures, check.failures
    diff = subprocess.run(
        ["git", "diff", "--numstat", "package.json"], cwd=app_copy, capture_output=True, text=True
    ).stdout.split()
    assert diff[:2] == ["6", "1"], "five lines added; only the last script line changed (its comma)"


def test_conflict_is_a_skipped_step_and_a_failed_check(app_copy):
    path = app_copy / "package.json"
    path.write_text(
        path.read_text().replace(
            '"typecheck": "pnpm -r typecheck"',
            '"docker:up": "docker compose up",\n    "typecheck": "pnpm -r typecheck"',
        )
    )
    changes, kept = packagejson.plan_docker_scripts(app_copy)
    assert kept[0].status == "skipped" and "overwrite_scripts=True" in kept[0].detail
    appfiles.apply(app_copy, changes)
    check = Checklist("1.8")
    packagejson.check_docker_scripts(check, app_copy)
    assert [r.name for r in check.failures] == ["script docker:up: docker compose up -d --wait"]


def test_check_notices_reformatting_and_lost_scripts(app_copy):
    path = app_copy / "package.json"
    data = json.loads(path.read_text())
    data["scripts"].update(DOCKER_SCRIPTS)
    del data["scripts"]["typecheck"]
    path.write_text(json.dumps(data, indent=4))
    check = Checklist("1.8")
    packagejson.check_docker_scripts(check, app_copy)
    assert {r.name for r in check.failures} == {
        "the app's other scripts unchanged",
        "indentation and final newline as before",
    }


def test_malformed_package_json_stops_the_plan(app_copy):
    (app_copy / "package.json").write_text('{\n  "name": "demo-app",\n  "scripts": {\n')
    with pytest.raises(PackageJsonError, match=r"line 4, column 1"):
        packagejson.plan_docker_scripts(app_copy)
    check = Checklist("1.8")
    packagejson.check_docker_scripts(check, app_copy)
    assert check.failures[0].name == "package.json is valid JSON"

"""Scrubbing: text, structures, notebooks (JSON), ANSI-coloured tracebacks, files, logs."""

from __future__ import annotations

import json
import logging

import pytest

from helpers.runner.redact import (
    SCHEME,
    RedactingFormatter,
    RedactingHandler,
    Redactor,
    activate,
    environment_secret_values,
)

SECRET = 'pa"ss<w>ord&123'  # quotes and HTML characters: the JSON/HTML-escaped forms must go too


def test_text_and_escaped_variants() -> None:
    r = Redactor([SECRET])
    assert SECRET not in r.text(f"x {SECRET} y")
    assert json.dumps(SECRET)[1:-1] not in r.text(json.dumps({"v": SECRET}))
    import html

    assert html.escape(SECRET) not in r.text(html.escape(f"v={SECRET}"))


def test_token_shapes_without_configuration() -> None:
    r = Redactor([])
    out = r.text("token ghp_" + "A" * 36 + " url postgresql://u:pw@localhost/db dop_v1_" + "a" * 64)
    assert "ghp_" not in out and ":pw@" not in out and "dop_v1_" not in out


def test_public_defaults_and_short_values_are_not_scrubbed() -> None:
    r = Redactor(["postgres", "abc"])
    assert r.text("image postgres:15 abc") == "image postgres:15 abc"


def test_secret_split_by_ansi_colour_codes() -> None:
    r = Redactor(["topsecretvalue"])
    coloured = "\x1b[0;31mtopsecret\x1b[0mvalue"
    assert "topsecret" not in r.text(coloured)


def test_obj_scrubs_nested_strings_and_keeps_other_values() -> None:
    r = Redactor(["s3cr3tvalue"])
    data = {"a": ["x s3cr3tvalue", {"b": "s3cr3tvalue"}], "n": 3, "t": True, "z": None}
    assert r.obj(data) == {"a": ["x [REDACTED]", {"b": "[REDACTED]"}], "n": 3, "t": True, "z": None}


def test_environment_secret_values() -> None:
    env = {"MY_API_TOKEN": "tok-1234", "HOME": "/root", "DB_PASSWORD": "pw-5678", "EMPTY_SECRET": ""}
    assert environment_secret_values(env) == {"tok-1234", "pw-5678"}
    # settings whose names say SECRET are configuration: the secrets file's path stays readable in reports
    settings = {"RUNBOOK_SECRETS_FILE": "/home/me/project/.env", "RUNBOOK_UPDATE_GITHUB_SECRETS": "true"}
    assert environment_secret_values({**env, **settings}) == {"tok-1234", "pw-5678"}


def test_notebook_handler_writes_scrubbed_json(tmp_path) -> None:
    activate(Redactor(["s3cr3tvalue"]))
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "source": "print(x)",
                "metadata": {},
                "execution_count": 1,
                "outputs": [{"output_type": "stream", "name": "stdout", "text": "s3cr3tvalue\n"}],
            }
        ],
        "metadata": {"papermill": {"output_path": SCHEME + str(tmp_path / "o.ipynb")}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    RedactingHandler().write(json.dumps(nb), SCHEME + str(tmp_path / "o.ipynb"))
    text = (tmp_path / "o.ipynb").read_text()
    assert "s3cr3tvalue" not in text and "[REDACTED]" in text
    assert json.loads(text)["metadata"]["papermill"]["output_path"] == str(tmp_path / "o.ipynb")
    with pytest.raises(FileNotFoundError):
        RedactingHandler().write(json.dumps(nb), SCHEME + str(tmp_path / "missing" / "o.ipynb"))


def test_tree_scrubs_every_text_file(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.log").write_text("x s3cr3tvalue")
    (tmp_path / "sub" / "b.ipynb").write_text(json.dumps({"cells": [], "metadata": {"v": "s3cr3tvalue"}}))
    (tmp_path / "clean.md").write_text("nothing here")
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00s3")
    changed = Redactor(["s3cr3tvalue"]).tree(tmp_path)
    assert sorted(p.name for p in changed) == ["a.log", "b.ipynb"]
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name != "bin":
            assert "s3cr3tvalue" not in path.read_text()


def test_log_formatter_scrubs_message_and_arguments() -> None:
    formatter = RedactingFormatter(Redactor(["s3cr3tvalue"]))
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "value %s", ("s3cr3tvalue",), None)
    assert "s3cr3tvalue" not in formatter.format(record)


def test_a_clean_notebook_is_written_as_given_and_a_coloured_one_string_by_string(tmp_path) -> None:
    """Nothing to scrub: papermill's text is kept (only the handler's own path prefix goes); ANSI colours
    anywhere send the notebook through the scrubber string by string, which finds a split secret."""
    activate(Redactor(["topsecretvalue"]))
    target = tmp_path / "o.ipynb"
    clean = {"cells": [], "metadata": {"papermill": {"output_path": SCHEME + str(target)}}, "nbformat": 4}
    text = json.dumps(clean, sort_keys=True, indent=1)
    RedactingHandler().write(text, SCHEME + str(target))
    assert target.read_text() == text.replace(SCHEME, "") + "\n"
    coloured = {**clean, "cells": [{"outputs": [{"traceback": ["\x1b[0;31mtopsecret\x1b[0mvalue"]}]}]}
    RedactingHandler().write(json.dumps(coloured), SCHEME + str(target))
    written = json.loads(target.read_text())
    assert written["cells"][0]["outputs"][0]["traceback"] == ["[REDACTED]"]
    assert written["metadata"]["papermill"]["output_path"] == str(target)

"""helpers.app.envfile: line-preserving .env edits and URLs inside values."""

from __future__ import annotations

import pytest

from helpers.app import envfile

TRICKY = (
    "# header comment\n"
    "\n"
    "export DATABASE_URL=postgresql://u:p@192.168.64.5:5432/app\n"
    'REDIS_URL="redis://192.168.64.5:6379"  # inline comment\n'
    "SINGLE='it''s raw'\n"
    "PLAIN=value # trailing comment\n"
    'MULTI="line one\n'
    'line two"\n'
    "EMPTY=\n"
    "   INDENTED = spaced\n"
    "not an assignment\n"
    "DATABASE_URL=postgresql://u:p@192.168.64.5:5432/other"
)


def test_parse_round_trips_exactly():
    assert envfile.render(envfile.parse(TRICKY)) == TRICKY
    crlf = TRICKY.replace("\n", "\r\n")
    assert envfile.render(envfile.parse(crlf)) == crlf


def test_parse_understands_export_quotes_and_comments():
    entries = {e.key: e for e in envfile.parse(TRICKY) if e.kind == "assign"}
    assert entries["REDIS_URL"].value == "redis://192.168.64.5:6379" and entries["REDIS_URL"].quote == '"'
    assert entries["PLAIN"].value == "value" and entries["PLAIN"].suffix == " # trailing comment"
    assert entries["MULTI"].value == "line one\nline two"
    assert entries["EMPTY"].value == ""
    assert entries["INDENTED"].value == "spaced"
    assert envfile.parse(TRICKY)[2].exported
    kinds = [e.kind for e in envfile.parse(TRICKY)]
    assert kinds[:2] == ["comment", "blank"] and "other" in kinds
    assert envfile.keys(TRICKY).count("DATABASE_URL") == 2
    assert envfile.values(TRICKY)["DATABASE_URL"].endswith("/other"), "last one wins, as with dotenv"


def test_set_key_changes_every_occurrence_and_nothing_else():
    new = envfile.set_key(TRICKY, "DATABASE_URL", "postgresql://a:b@localhost:5432/app")
    assert envfile.all_values(new, "DATABASE_URL") == ["postgresql://a:b@localhost:5432/app"] * 2
    assert "export DATABASE_URL=postgresql://a:b@localhost:5432/app\n" in new
    assert not new.endswith("\n"), "no final newline stays so"
    old_lines, new_lines = TRICKY.split("\n"), new.split("\n")
    changed = [i for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=True)) if a != b]
    assert changed == [2, 11]


def test_set_key_keeps_quotes_and_inline_comment():
    new = envfile.set_key(TRICKY, "REDIS_URL", "redis://localhost:6379")
    assert 'REDIS_URL="redis://localhost:6379"  # inline comment\n' in new


def test_set_key_appends_when_absent():
    assert envfile.set_key("A=1", "B", "2") == "A=1\nB=2\n"
    assert envfile.set_key("A=1\r\n", "B", "x y") == 'A=1\r\nB="x y"\r\n'
    assert envfile.set_key("", "B", "2") == "B=2\n"


@pytest.mark.parametrize(
    ("raw", "wanted", "result"),
    [
        ("postgresql://demo:demo@192.168.64.2:5432/queue_demo", {"host": "localhost"},
         "postgresql://demo:demo@localhost:5432/queue_demo"),
        ("redis://10.13.37.5:6379/2", {"host": "localhost"}, "redis://localhost:6379/2"),
        ("redis://10.13.37.5", {"port": "6380", "database": "1"}, "redis://10.13.37.5:6380/1"),
        ("redis://h:6379", {"database": "0"}, "redis://h:6379"),  # db 0 needs no path
        ("postgres://a:b@h/db?sslmode=disable", {"database": "app", "user": "p@x"},
         "postgres://p%40x:b@h/app?sslmode=disable"),
        # a part written as ${VAR} is left to the key VAR
        ("postgresql://${POSTGRES_USER}:${POSTGRES_PASSWORD}@${POSTGRES_HOST}:5432/${POSTGRES_DB}",
         {"host": "localhost", "port": "5433"},
         "postgresql://${POSTGRES_USER}:${POSTGRES_PASSWORD}@${POSTGRES_HOST}:5433/${POSTGRES_DB}"),
        ("not a url", {"host": "localhost"}, "not a url"),
    ],
)  # fmt: skip
def test_edit_url_changes_only_the_parts_asked(raw, wanted, result):
    assert envfile.edit_url(raw, wanted) == result

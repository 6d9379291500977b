"""Secrets come from the environment or the git-ignored file and never leave scrubbed text."""

from __future__ import annotations

import pytest

from helpers.core import secrets


@pytest.fixture
def secrets_file(tmp_path, monkeypatch):
    path = tmp_path / "secrets.env"
    monkeypatch.setenv("RUNBOOK_SECRETS_FILE", str(path))
    for name in secrets.SECRETS:
        monkeypatch.delenv(name, raising=False)
    return path


def test_missing_secret_says_where_to_get_it(secrets_file):
    with pytest.raises(secrets.MissingSecret) as err:
        secrets.get("DIGITALOCEAN_TOKEN")
    text = str(err.value)
    assert "DIGITALOCEAN_TOKEN" in text and str(secrets_file) in text and "never pass it" in text


def test_environment_wins_over_file(secrets_file, monkeypatch):
    secrets_file.write_text("COOLIFY_API_TOKEN=from-file\n")
    assert secrets.get("COOLIFY_API_TOKEN") == "from-file"
    monkeypatch.setenv("COOLIFY_API_TOKEN", "from-env")
    assert secrets.get("COOLIFY_API_TOKEN") == "from-env"


def test_put_writes_a_private_file(secrets_file, monkeypatch):
    monkeypatch.delenv("PROD_REDIS_PASSWORD", raising=False)
    secrets.put("PROD_REDIS_PASSWORD", "s3cret-value")
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    assert "PROD_REDIS_PASSWORD=s3cret-value" in secrets_file.read_text()
    assert secrets.get("PROD_REDIS_PASSWORD") == "s3cret-value"


def test_scrub_removes_known_values_and_token_shapes(secrets_file, monkeypatch):
    monkeypatch.setenv("COOLIFY_API_TOKEN", "3|abcdefghijklmnop")
    text = (
        "token 3|abcdefghijklmnop\n"
        "do dop_v1_0123456789abcdef0123456789abcdef\n"
        "gh ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZ012345\n"
        "Authorization: Bearer xyz.abc.def\n"
        "postgresql://app:hunter2hunter2@db:5432/app\n"
    )
    clean = secrets.scrub(text)
    for leaked in ("abcdefghijklmnop", "dop_v1_0123", "ghp_ABC", "xyz.abc.def", "hunter2"):
        assert leaked not in clean
    assert "postgresql://app:[REDACTED]@db:5432/app" in clean
    assert "Authorization: Bearer [REDACTED]" in clean


def test_generated_passwords_are_strong_and_url_safe():
    a, b = secrets.generate(), secrets.generate()
    assert a != b and len(a) >= 32 and all(c.isalnum() or c in "-_" for c in a)


@pytest.mark.parametrize("name", ["DIGITALOCEAN_TOKEN", "db_password", "github_token", "APP_SECRET"])
def test_secret_looking_names(name):
    assert secrets.is_secret_name(name)


@pytest.mark.parametrize("name", ["app_dir", "dry_run", "region", "postgres_port"])
def test_ordinary_names(name):
    assert not secrets.is_secret_name(name)


def test_documented_public_defaults_are_not_scrubbed_as_words(secrets_file, monkeypatch):
    monkeypatch.setenv("POSTGRES_PASSWORD", "postgres")
    assert secrets.scrub("image postgres:15-alpine") == "image postgres:15-alpine"
    monkeypatch.setenv("POSTGRES_PASSWORD", "a-real-local-password")
    assert "a-real-local-password" not in secrets.scrub("pw a-real-local-password")


def test_scrubbing_json_text_keeps_it_valid_json(secrets_file):
    import json

    text = json.dumps({"workflow": 'curl -H "Authorization: Bearer ${COOLIFY_API_TOKEN}" --fail-with-body'})
    scrubbed = json.loads(secrets.scrub(text))["workflow"]
    assert scrubbed.startswith('curl -H "Authorization: Bearer [REDACTED]"')


@pytest.mark.parametrize(
    "text",
    [
        "token dop_v1_" + "a" * 64,
        "x ghp_" + "A" * 36,
        "github_pat_" + "B" * 40,
        "Authorization: Bearer abc.def",
        "BEARER " + "z" * 20,
        "REDIS_URL=rediss://default:pw@host:6379",
        "postgresql://app:hunter2@db/app",
    ],
)
def test_every_token_shape_passes_the_quick_check_and_is_scrubbed(text):
    """scrub() tries the token patterns only where MAY_HOLD_TOKEN matches: it must admit each shape."""
    assert any(pattern.search(text) for pattern, _ in secrets.TOKEN_PATTERNS), text
    assert secrets.MAY_HOLD_TOKEN.search(text), text
    assert secrets.scrub(text, values=[]) != text

"""What VM-era text looks like, and how one line of it is rewritten (the vocabulary of tasks 1.6 to 1.12).

A *reference* is anything that only made sense while PostgreSQL and Redis ran in a Multipass VM:
the word ``multipass`` (commands, links, prose), the VM's private address ``192.168.64.<n>``
(Multipass's default network on macOS) and the Coolify dashboard on that address. :class:`Rules` says
what counts (a notebook's parameters can add patterns); the functions here work on one line or one
value, so the file-level rewriters (:mod:`helpers.app.references` for docs and code,
:mod:`helpers.app.envfile` for env files, :mod:`helpers.app.packagejson` for scripts) share them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

VM_IP = r"192\.168\.64\.\d{1,3}"
COOLIFY_PLACEHOLDER = "http://your-coolify-server:8000"
DOCKER_INSTALL_URL = "https://docs.docker.com/get-started/get-docker/"


@dataclass(frozen=True)
class Rules:
    """What counts as a reference, and extra rewrites. Notebook parameters map onto these fields."""

    vm_ip: str = VM_IP  # regex of the VM's address(es)
    extra_patterns: tuple[str, ...] = ()  # more regexes to report (e.g. the VM's host name)
    replacements: tuple[tuple[str, str], ...] = ()  # (regex, replacement) applied before the rules
    docs_dir: str = "docs"

    @classmethod
    def from_params(
        cls,
        vm_ip: str = "",
        extra_patterns: Iterable[str] = (),
        replacements: dict[str, str] | Iterable[tuple[str, str]] = (),
        docs_dir: str = "docs",
    ) -> Rules:
        pairs = tuple(replacements.items()) if isinstance(replacements, dict) else tuple(replacements)
        for pattern in [vm_ip, *extra_patterns, *(p for p, _ in pairs)]:
            if pattern:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(
                        f"pattern {pattern!r} is not a valid regular expression: {exc}"
                    ) from None
        return cls(
            vm_ip or VM_IP, tuple(p for p in extra_patterns if p), pairs, docs_dir.strip("/") or "docs"
        )

    def patterns(self) -> list[tuple[str, re.Pattern[str]]]:
        found = [
            ("Coolify on the VM", re.compile(rf"https?://{self.vm_ip}:8000")),
            ("VM address", re.compile(rf"(?<![\d.]){self.vm_ip}(?![\d])")),
            ("multipass", re.compile(r"multipass", re.I)),
        ]
        return found + [(f"pattern {p}", re.compile(p)) for p in self.extra_patterns]


DEFAULT_RULES = Rules()


def find_in_text(text: str, rules: Rules = DEFAULT_RULES) -> list[tuple[int, str, str]]:
    """``(line number, line, what)`` for every line that holds a reference."""
    out = []
    patterns = rules.patterns()
    for number, line in enumerate(text.splitlines(), start=1):
        what = [label for label, rx in patterns if rx.search(line)]
        if "Coolify on the VM" in what:
            what.remove("VM address")
        if what:
            out.append((number, line, ", ".join(what)))
    return out


def has_reference(text: str | None, rules: Rules = DEFAULT_RULES) -> bool:
    return bool(text) and bool(find_in_text(text, rules))


_CASE = re.IGNORECASE


def _match_case(repl: str, matched: str) -> str:
    """Capitalise the replacement when the matched text started a sentence."""
    return repl[:1].upper() + repl[1:] if matched[:1].isupper() else repl


_VM_WORDS = r"multipass\s+(?:vm|virtual\s+machine|instance)s?(?:\s+`[^`]+`)?"
_PHRASES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"https?://[^\s)>\]\"'`]*multipass[^\s)>\]\"'`]*", _CASE), DOCKER_INSTALL_URL),
    (re.compile(rf"\b(?:inside|in|on)\s+(?:the|a|your)\s+{_VM_WORDS}", _CASE), "in Docker"),
    (re.compile(rf"\b(?:the|a|your)\s+{_VM_WORDS}", _CASE), "the Docker services"),
    (re.compile(rf"\b{_VM_WORDS}", _CASE), "Docker services"),
    (re.compile(r"\bwith\s+multipass\b", _CASE), "with Docker"),
)


def rewrite_prose(line: str, rules: Rules = DEFAULT_RULES) -> str:
    """Phrase rules, then addresses, then the last resort: "Multipass" → "Docker"."""
    original = line
    for rx, repl in _PHRASES:
        line = rx.sub(lambda m, r=repl: _match_case(r, m.group(0)), line)
    line = rewrite_addresses(line, rules)
    line = re.sub(r"multipass", _docker_word, line, flags=_CASE)
    return _keep_rule_width(original, line)


def _docker_word(m: re.Match[str]) -> str:
    word = m.group(0)
    return "DOCKER" if word.isupper() else "Docker" if word[0].isupper() else "docker"


def _keep_rule_width(old: str, new: str) -> str:
    """``# --- Services in the VM -------`` keeps its width when its words get shorter or longer."""
    m = re.search(r"([-=#*~])\1{2,}$", new)
    if not m or len(new) == len(old):
        return new
    return (
        new + m.group(1) * (len(old) - len(new))
        if len(new) < len(old)
        else (new[: max(len(old), m.start() + 3)])
    )


def rewrite_addresses(text: str, rules: Rules = DEFAULT_RULES, coolify: str = COOLIFY_PLACEHOLDER) -> str:
    """The Coolify dashboard on the VM → ``coolify``; URLs and bare addresses of the VM → localhost."""
    ip = rules.vm_ip
    text = re.sub(rf"https?://{ip}:8000(?:/[^\s)\]>\"'`]*)?", coolify, text)
    text = re.sub(
        rf"(?P<pre>[a-z][a-z0-9+.-]*://(?:[^@\s/]*@)?){ip}(?![\d])", r"\g<pre>localhost", text, flags=_CASE
    )
    return re.sub(rf"(?<![\d.]){ip}(?![\d])", "localhost", text)


_COMMAND = re.compile(r"^(?P<lead>\s*(?:\$\s+|>\s+)?)(?P<cmd>(?:sudo\s+)?multipass\s+.*?)\s*$", _CASE)
_SERVICES_IN_VM = (
    ("psql", "postgres"),
    ("pg_dump", "postgres"),
    ("pg_isready", "postgres"),
    ("redis-cli", "redis"),
)


def map_command(command: str) -> str | None:
    """The docker-compose equivalent of one ``multipass ...`` command, or None when it has none."""
    m = re.match(r"\s*(?:sudo\s+)?multipass\s+([\w-]+)\s*(.*)$", command.strip(), _CASE)
    if not m:
        return None
    verb, rest = m.group(1).lower(), m.group(2)
    simple = {
        "launch": "docker compose up -d --wait",
        "start": "docker compose up -d --wait",
        "stop": "docker compose stop",
        "restart": "docker compose restart",
        "info": "docker compose ps",
        "list": "docker compose ps",
        "ls": "docker compose ps",
        "delete": "docker compose down -v",
    }
    if verb in simple:
        return simple[verb]
    if verb == "exec" and " -- " in f" {rest} ":
        inner = rest.split("--", 1)[1].strip()
        inner = re.sub(r"^sudo\s+(?:-u\s+\S+\s+)?", "", inner)
        for program, service in _SERVICES_IN_VM:
            if re.match(rf"{re.escape(program)}\b", inner):
                return f"docker compose exec {service} {inner}"
    return None


MULTIPASS_VERBS = (
    "launch",
    "start",
    "stop",
    "restart",
    "suspend",
    "info",
    "list",
    "ls",
    "delete",
    "purge",
    "recover",
    "exec",
    "shell",
    "sh",
    "connect",
    "mount",
    "umount",
    "unmount",
    "transfer",
    "copy-files",
    "set",
    "get",
    "version",
    "find",
    "networks",
    "alias",
    "aliases",
    "unalias",
    "help",
    "snapshot",
    "restore",
    "clone",
    "authenticate",
    "login",
)
_COMMAND_WORD = re.compile(
    r"(?:^|[\s`(;&|$])(?:sudo\s+)?multipass\s+(?:" + "|".join(MULTIPASS_VERBS) + r")\b"
)


def has_multipass_command(line: str) -> bool:
    """A ``multipass <verb>`` command in the line (lower case, as typed in a shell)."""
    return bool(_COMMAND_WORD.search(line))


_EMBEDDED = re.compile(r"(?:sudo\s+)?multipass\s+(?:" + "|".join(MULTIPASS_VERBS) + r")\b[^\n\"'`;&|]*")


def map_embedded_commands(line: str) -> str:
    """``multipass`` commands inside code or configuration (YAML ``run:``, JSON strings) → docker compose."""
    return _EMBEDDED.sub(lambda m: map_command(m.group(0)) or m.group(0), line)


def split_newline(line: str) -> tuple[str, str]:
    """``("text", "\r\n")``: a line and its line ending, apart."""
    stripped = line.rstrip("\r\n")
    return stripped, line[len(stripped) :]


def rewrite_command_line(line: str, rules: Rules = DEFAULT_RULES) -> str | None:
    """A line of shell code: mapped, kept (addresses rewritten) or None (remove the line)."""
    body, newline = split_newline(line)
    if not re.search("multipass", body, _CASE):
        return rewrite_addresses(body, rules) + newline
    m = _COMMAND.match(body)
    if not m:
        return None  # e.g. `brew install --cask multipass`, `IP=$(multipass info ...)`
    parts = [p for p in re.split(r"\s*(?:&&|;)\s*", m.group("cmd")) if p.strip()]
    mapped = []
    for part in parts:
        if re.search("multipass", part, _CASE):
            replacement = map_command(part)
            if replacement and replacement not in mapped:
                mapped.append(replacement)
        else:
            mapped.append(rewrite_addresses(part, rules))
    if not mapped:
        return None
    return m.group("lead") + " && ".join(mapped) + newline


def rewrite_inline_code(line: str, rules: Rules = DEFAULT_RULES) -> str:
    """Inline code spans in prose: ``multipass`` commands mapped, other spans by the prose rules."""

    def one(m: re.Match[str]) -> str:
        span = m.group(1)
        if not re.search(rf"multipass|{rules.vm_ip}", span, _CASE):
            return m.group(0)
        if has_multipass_command(span):
            return f"`{map_command(span) or 'docker compose'}`"
        return f"`{rewrite_prose(span, rules)}`"

    return re.sub(r"`([^`\n]+)`", one, line)

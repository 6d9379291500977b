"""What VM-era text looks like, and how one line of it may be rewritten (the vocabulary of tasks 1.6 to 1.12).

A line *speaks of the VM* (:func:`speaks_of_vm`) when it names Multipass, the VM (``VM``, ``virtual
machine``, or the team's own name for it, such as "the box": :func:`learn_aliases`), the VM's
address (Multipass's default network ``192.168.64.<n>`` and every non-local host the app's
``.env.example`` used: :class:`Rules`), or Coolify as the local setup. The docs checks and the
rewriters share this one test.

Rewrites come in two strengths:

* :func:`sure_rewrite` applies only rules whose result is a whole true sentence: a ``multipass``
  command in a code span mapped to its ``docker compose`` equivalent, "in the Multipass VM" → "in
  Docker", the VM's address in a URL or ``host:port`` → ``localhost``, a link to Multipass's site
  named Multipass → Docker's installation page, and the VM dropped from an enumeration ("VM + web +
  worker" → "web + worker": what is left was already claimed). The caller keeps the result only when
  it no longer speaks of the VM;
* :func:`proposed_rewrite` goes further (any "the VM" → "the Docker services", the Coolify dashboard
  on the VM → a placeholder, a parenthesis about the VM dropped, "Multipass" → "Docker"): a
  *proposal* shown to the person, applied only when they accept it.

The file-level rewriters (:mod:`helpers.app.references` for docs and code, :mod:`helpers.app.envfile`
for env files) decide what a line is (code, a list item, a comment) and which strength applies.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

VM_IP = r"192\.168\.64\.\d{1,3}"
COOLIFY_PLACEHOLDER = "http://your-coolify-server:8000"
DOCKER_INSTALL_URL = "https://docs.docker.com/get-started/get-docker/"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", "host.docker.internal", ""})


@dataclass(frozen=True)
class Rules:
    """What counts as a reference, and extra rewrites. Notebook parameters map onto these fields.

    ``hosts`` are the VM's other addresses or names (read from the app: the non-local hosts its
    ``.env.example`` used), ``aliases`` the team's words for the VM ("box").
    """

    vm_ip: str = VM_IP  # regex of the VM's address(es)
    extra_patterns: tuple[str, ...] = ()  # more regexes to report (e.g. the VM's host name)
    replacements: tuple[tuple[str, str], ...] = ()  # (regex, replacement) applied before the rules
    docs_dir: str = "docs"
    hosts: tuple[str, ...] = ()
    aliases: tuple[str, ...] = field(default=())

    @classmethod
    def from_params(
        cls,
        vm_ip: str = "",
        extra_patterns: Iterable[str] = (),
        replacements: dict[str, str] | Iterable[tuple[str, str]] = (),
        docs_dir: str = "docs",
        hosts: Iterable[str] = (),
        aliases: Iterable[str] = (),
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
            vm_ip or VM_IP,
            tuple(p for p in extra_patterns if p),
            pairs,
            docs_dir.strip("/") or "docs",
            tuple(sorted({h for h in hosts if h and h.lower() not in LOCAL_HOSTS})),
            tuple(sorted({a.lower() for a in aliases if a})),
        )

    def with_hosts(self, hosts: Iterable[str]) -> Rules:
        extra = {h for h in hosts if h and h.lower() not in LOCAL_HOSTS}
        return replace(self, hosts=tuple(sorted(set(self.hosts) | extra)))

    @property
    def address(self) -> str:
        """Regex of any address of the VM (its network and its known hosts)."""
        names = [re.escape(h) for h in sorted(self.hosts, key=len, reverse=True)]
        return "|".join([f"(?:{self.vm_ip})", *names])

    def address_rx(self) -> re.Pattern[str]:
        return re.compile(rf"(?<![\w.-])(?:{self.address})(?![\w-]|\.\d)", re.I)

    def patterns(self) -> list[tuple[str, re.Pattern[str]]]:
        found = [
            ("Coolify on the VM", re.compile(rf"https?://(?:{self.address}):8000", re.I)),
            ("VM address", self.address_rx()),
            ("multipass", re.compile(r"multipass", re.I)),
        ]
        return found + [(f"pattern {p}", re.compile(p)) for p in self.extra_patterns]

    def vm_words(self) -> re.Pattern[str]:
        """``VM``, ``virtual machine`` and the team's aliases ("the box")."""
        words = [r"\bVMs?\b", r"\bvirtual machines?\b"]
        words += [rf"\b(?:dev[- ]?)?{re.escape(a)}(?:es|s|'s)?\b" for a in self.aliases]
        return re.compile("|".join(words), re.I)


DEFAULT_RULES = Rules()


def find_in_text(text: str, rules: Rules = DEFAULT_RULES) -> list[tuple[int, str, str]]:
    """``(line number, line, what)`` for every line that holds a reference (Multipass or the VM's address)."""
    out = []
    patterns = rules.patterns()
    for number, line in enumerate(text.splitlines(), start=1):
        what = []
        for label, rx in patterns:
            m = rx.search(line)
            if m:
                what.append(f"VM address {m.group(0)}" if label == "VM address" and rules.hosts else label)
        if "Coolify on the VM" in what:
            what = [w for w in what if not w.startswith("VM address")]
        if what:
            out.append((number, line, ", ".join(what)))
    return out


def has_reference(text: str | None, rules: Rules = DEFAULT_RULES) -> bool:
    return bool(text) and bool(find_in_text(text, rules))


# --------------------------------------------------------------------------- speaks of the VM

_COOLIFY = re.compile(r"coolify", re.I)
_LOCAL_WORDS = re.compile(
    r"\blocal(?:ly|host)?\b|127\.0\.0\.1|\bdev(?:elopment)?\b|\blaptop|your machine|in docker|docker compose",
    re.I,
)
_PROD_WORDS = re.compile(r"production|\bprod\b|droplet|\bserver\b|deploy|digitalocean|ghcr|webhook", re.I)


def speaks_of_vm(line: str, rules: Rules = DEFAULT_RULES, section: str = "") -> str | None:
    """What in ``line`` speaks of the VM as the local setup (``None`` when nothing does).

    ``section`` is the heading the line sits under: "Coolify manages them" is about the local setup
    under "Local services", not under "Production".
    """
    what = [w for _, _, w in find_in_text(line, rules)]
    words = re.sub(r"\]\([^)\s]*\)|\]\[[^\]]*\]", "]", line)  # a link's target or label says nothing
    if rules.vm_words().search(words):
        what.append("the VM")
    if any(_coolify_local(part, section) for part in _segments(line)):
        what.append("Coolify as the local setup")
    return ", ".join(dict.fromkeys(what)) or None


def _segments(line: str) -> list[str]:
    """A table row's cells, or a line's sentences and clauses: where local and production are told apart."""
    words = re.sub(r"\w+://\S+", " ", line)  # http://your-coolify-server:8000 says nothing of where
    if words.strip().startswith("|"):
        return words.strip().strip("|").split("|")
    return re.split(r"[.;:](?:\s|$)", words)


def _coolify_local(part: str, section: str) -> bool:
    """Coolify in a sentence (or cell) about local development, with no word of production in it."""
    if not _COOLIFY.search(part) or _PROD_WORDS.search(part):
        return False
    return bool(
        _LOCAL_WORDS.search(part) or (_LOCAL_WORDS.search(section) and not _PROD_WORDS.search(section))
    )


_ALIAS_STOP = frozenset(
    {
        "vm",
        "vms",
        "instance",
        "instances",
        "virtual",
        "machine",
        "server",
        "host",
        "computer",
        "laptop",
        "app",
        "service",
        "services",
        "database",
        "docs",
        "setup",
        "page",
        "and",
        "or",
        "to",
        "for",
        "is",
    }
)


def learn_aliases(texts: Iterable[str]) -> tuple[str, ...]:
    """The team's own word for the VM, where the docs define it: "The box is a Multipass VM"."""
    found: set[str] = set()
    for text in texts:
        for m in re.finditer(
            r"\bthe\s+([a-z][a-z-]+)\s+is\s+an?\s+(?:multipass\s+)?(?:vm|virtual machine)\b", text, re.I
        ):
            found.add(m.group(1).lower())
    return tuple(sorted(w for w in found if w not in _ALIAS_STOP and w not in MULTIPASS_VERBS))


# --------------------------------------------------------------------------- addresses and commands


def rewrite_addresses(
    text: str, rules: Rules = DEFAULT_RULES, coolify: str | None = COOLIFY_PLACEHOLDER
) -> str:
    """URLs and bare addresses of the VM → localhost; the Coolify dashboard on the VM → ``coolify``.

    With ``coolify=None`` the dashboard's URL is left as it is (in prose it is not sure what it becomes).
    """
    ip = rules.address
    dashboard = re.compile(rf"https?://(?:{ip}):8000(?:/[^\s)\]>\"'`]*)?", re.I)
    if coolify is not None:
        return _hosts_to_localhost(dashboard.sub(coolify, text), ip)
    out, last = [], 0
    for m in dashboard.finditer(text):  # the dashboard's URL stays: what it becomes is not sure
        out += [_hosts_to_localhost(text[last : m.start()], ip), m.group(0)]
        last = m.end()
    return "".join(out) + _hosts_to_localhost(text[last:], ip)


def _hosts_to_localhost(text: str, ip: str) -> str:
    text = re.sub(
        rf"(?P<pre>[a-z][a-z0-9+.-]*://(?:[^@\s/]*@)?)(?:{ip})(?![\w-]|\.\d)",
        r"\g<pre>localhost",
        text,
        flags=re.I,
    )
    return re.sub(rf"(?<![\w.-])(?:{ip})(?![\w-]|\.\d)", "localhost", text, flags=re.I)


_COMMAND = re.compile(r"^(?P<lead>\s*(?:\$\s+|>\s+)?)(?P<cmd>(?:sudo\s+)?multipass\s+.*?)\s*$", re.I)
_SERVICES_IN_VM = (
    ("psql", "postgres"),
    ("pg_dump", "postgres"),
    ("pg_isready", "postgres"),
    ("redis-cli", "redis"),
)


def map_command(command: str) -> str | None:
    """The docker-compose equivalent of one ``multipass ...`` command, or None when it has none."""
    m = re.match(r"\s*(?:sudo\s+)?multipass\s+([\w-]+)\s*(.*)$", command.strip(), re.I)
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
    if not re.search("multipass", body, re.I):
        return rewrite_addresses(body, rules) + newline
    m = _COMMAND.match(body)
    if not m:
        return None  # e.g. `brew install --cask multipass`, `IP=$(multipass info ...)`
    parts = [p for p in re.split(r"\s*(?:&&|;)\s*", m.group("cmd")) if p.strip()]
    mapped = []
    for part in parts:
        if re.search("multipass", part, re.I):
            replacement = map_command(part)
            if replacement and replacement not in mapped:
                mapped.append(replacement)
        else:
            mapped.append(rewrite_addresses(part, rules))
    if not mapped:
        return None
    return m.group("lead") + " && ".join(mapped) + newline


# In prose, "never run `multipass delete`: it holds your data" speaks of the VM around the command.
_DESTROYS = re.compile(r"multipass\s+(?:delete|purge)\b", re.I)


def rewrite_inline_code(line: str, rules: Rules = DEFAULT_RULES, sure: bool = True) -> str:
    """Code spans in prose: a ``multipass`` command mapped, the VM's address in a span → ``localhost``.

    A span with a multipass command that has no equivalent is left as it is (``sure``), or becomes
    ``docker compose`` in a proposal.
    """

    def one(m: re.Match[str]) -> str:
        span = m.group(1)
        if has_multipass_command(span):
            mapped = map_command(span)
            if mapped and (not sure or not _DESTROYS.search(span)):
                return f"`{mapped}`"
            return m.group(0) if sure else "`docker compose`"
        if rules.address_rx().search(span) and "multipass" not in span.lower():
            return f"`{rewrite_addresses(span, rules, coolify=None if sure else COOLIFY_PLACEHOLDER)}`"
        return m.group(0)

    return re.sub(r"`([^`\n]+)`", one, line)


# --------------------------------------------------------------------------- prose


def _match_case(repl: str, matched: str) -> str:
    """Capitalise the replacement when the matched text started a sentence."""
    return repl[:1].upper() + repl[1:] if matched[:1].isupper() else repl


_MP_VM = r"multipass\s+(?:vm|virtual\s+machine|instance)s?(?:\s+`[^`]+`)?"
_MULTIPASS_LINK = re.compile(r"\[multipass\]\(https?://[^)\s]*multipass[^)\s]*\)", re.I)
_MULTIPASS_URL = re.compile(r"https?://[^\s)>\]\"'`]*multipass[^\s)>\]\"'`]*", re.I)
# Sure: where the sentence stays grammatical and true once the services run in Docker.
_SURE_PHRASES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"\b(?:inside|in|on)\s+(?:the|a|your)\s+{_MP_VM}", re.I), "in Docker"),
    (
        re.compile(
            rf"\b(?P<verb>at|to|from|with|start|stop|restart|launch|boot|reach|use)\s+(?:the|a|your)\s+{_MP_VM}",
            re.I,
        ),
        r"\g<verb> the Docker services",
    ),
)


def _vm_noun(rules: Rules) -> str:
    aliases = "".join(f"|{re.escape(a)}" for a in rules.aliases)
    return rf"(?:multipass\s+)?(?:VMs?|virtual\s+machines?{aliases})(?:\s+`[^`]+`)?"


def _phrase_rules(rules: Rules) -> tuple[tuple[re.Pattern[str], str], ...]:
    """The proposals' phrase rules: any "the VM" (and the team's aliases), not only "the Multipass VM"."""
    noun = _vm_noun(rules)
    det = r"(?:the|a|your|our)\s+(?:[\w-]+\s+)?"
    return (
        (re.compile(rf"\b(?:inside|in|on)\s+{det}{noun}\b", re.I), "in Docker"),
        (re.compile(rf"\b{det}{noun}\b", re.I), "the Docker services"),
        (re.compile(rf"\b{_MP_VM}", re.I), "Docker services"),
    )


def sure_rewrite(line: str, rules: Rules = DEFAULT_RULES) -> str:
    """The rules whose result is a whole true sentence (see the module's docstring)."""
    original = line
    line = rewrite_inline_code(line, rules)
    line = _MULTIPASS_LINK.sub(f"[Docker]({DOCKER_INSTALL_URL})", line)
    for rx, repl in _SURE_PHRASES:
        line = rx.sub(lambda m, r=repl: _match_case(m.expand(r), m.group(0)), line)
    line = _outside_code(line, lambda part: rewrite_addresses(part, rules, coolify=None))
    return _keep_rule_width(original, drop_from_enumeration(line, rules))


def proposed_rewrite(line: str, rules: Rules = DEFAULT_RULES) -> str:
    """A proposal for a line no sure rule fixes (shown to the person, applied when they accept it)."""
    original = line
    line = sure_rewrite(line, rules)
    line = rewrite_inline_code(line, rules, sure=False)
    line = _MULTIPASS_URL.sub(DOCKER_INSTALL_URL, line)
    line = drop_from_enumeration(line, rules, loose=True)
    line = drop_parentheses(line, rules)

    def prose(part: str) -> str:
        part = rewrite_addresses(part, rules)
        for rx, repl in _phrase_rules(rules):
            part = rx.sub(lambda m, r=repl: _match_case(r, m.group(0)), part)
        return re.sub(r"multipass", _docker_word, part, flags=re.I)

    return _keep_rule_width(original, _outside_code(line, prose))


def rewrite_prose(line: str, rules: Rules = DEFAULT_RULES) -> str:
    """Word-level rewriting of a comment in code (kept for code comments and a heading's old title)."""
    return proposed_rewrite(line, rules)


def _outside_code(line: str, fn) -> str:
    """Apply ``fn`` to the parts of ``line`` outside code spans."""
    parts = re.split(r"(`[^`\n]+`)", line)
    return "".join(p if p.startswith("`") and p.endswith("`") and len(p) > 1 else fn(p) for p in parts)


def _docker_word(m: re.Match[str]) -> str:
    word = m.group(0)
    return "DOCKER" if word.isupper() else "Docker" if word[0].isupper() else "docker"


def _keep_rule_width(old: str, new: str) -> str:
    """``# --- Services in the VM -------`` keeps its width when its words get shorter or longer."""
    m = re.search(r"([-=#*~─━])\1{2,}$", new)
    if not m or len(new) == len(old):
        return new
    return (
        new + m.group(1) * (len(old) - len(new))
        if len(new) < len(old)
        else (new[: max(len(old), m.start() + 3)])
    )


# --------------------------------------------------------------------------- enumerations and asides


def _element(rules: Rules) -> str:
    """A noun phrase that is only the VM: "VM", "the dev VM (predev)", "the multipass box"."""
    return rf"(?:(?:the|a|your|our)\s+)?(?:[\w-]+\s+)?{_vm_noun(rules)}(?:\s+\([^)]*\))?"


def drop_from_enumeration(line: str, rules: Rules = DEFAULT_RULES, loose: bool = False) -> str:
    """The VM dropped from an enumeration: "(VM + web + worker)" → "(web + worker)", "starts the VM
    (predev), the dashboard and the worker" → "starts the dashboard and the worker".

    Sure: only "A + B" lists and comma lists that end with "and"; ``loose`` (a proposal) also drops
    an element after a comma ("MinIO, also on the VM" → "MinIO").
    """
    el = _element(rules)
    out = re.sub(rf"(?<![\w-]){el}\s*\+\s*(?=\S)", "", line, flags=re.I)
    out = re.sub(rf"\s*\+\s*{el}(?![\w-])", "", out, flags=re.I)
    out = re.sub(rf"(?<![\w-]){el},\s+(?=[^.;:()]*\band\b)", "", out, flags=re.I)
    out = re.sub(rf",\s+{el}(?=\s+and\b)", "", out, flags=re.I)
    if loose:
        out = re.sub(rf",\s+(?:also\s+)?(?:(?:in|on|inside)\s+)?{el}(?=\s*[).;]|$)", "", out, flags=re.I)
    return out


def drop_parentheses(line: str, rules: Rules = DEFAULT_RULES) -> str:
    """A parenthesis that speaks of the VM, dropped with the space before it (a proposal)."""

    def one(m: re.Match[str]) -> str:
        return "" if speaks_of_vm(m.group(0), rules) else m.group(0)

    return re.sub(r"\s*\([^()`]*(?:`[^`]*`[^()`]*)*\)", one, line)


def sentences(text: str) -> list[str]:
    """The sentences of a paragraph (split after ``.``, ``!`` or ``?`` and a space)."""
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z`\[(*_])", text.strip())
    return [p for p in parts if p]


def repoint_paths(line: str, gone: Mapping[str, str]) -> str:
    """A removed page named by its repository path outside a link (``see docs/vm-setup.md``) → the
    path of the page that replaced it."""
    parts = re.split(r"(\[[^\]]*\]\([^)]*\))", line)
    out = []
    for part in parts:
        if part.startswith("[") and "](" in part:
            out.append(part)
            continue
        for path in sorted(gone, key=len, reverse=True):
            new = gone[path].split("#", 1)[0]
            part = re.sub(r"(?<![\w/.-])" + re.escape(path) + r"(?![\w/-])", new, part)
        out.append(part)
    return "".join(out)


# --------------------------------------------------------------------------- lines no rule is sure about


@dataclass(frozen=True)
class Unsure:
    """A line (or a few: a paragraph, a section) that speaks of the VM and that no sure rule fixes.

    It is left as it is and listed; ``proposal`` says what accepting it does, ``edit`` is that change:
    the file's lines ``[start, end)`` (0-based) replaced by ``lines`` (an empty tuple removes them).
    """

    path: str
    line: int  # 1-based, the first line listed
    text: str  # the listed lines, as they are
    proposal: str  # shown to the person: the new text, or what happens
    why: str  # what in it speaks of the VM
    edit: tuple[int, int, tuple[str, ...]] = (0, 0, ())

    @property
    def last(self) -> int:
        return self.line + self.text.count("\n")

    @property
    def where(self) -> str:
        return (
            f"{self.path}:{self.line}" if self.last == self.line else f"{self.path}:{self.line}-{self.last}"
        )

    def accepted_by(self, accept: Iterable[str]) -> bool:
        """``accept`` items: ``all``, a file (every line listed in it), or ``file:line``."""
        for item in accept:
            path, _, number = item.rpartition(":") if re.search(r":\d+$", item) else (item, "", "")
            if item == "all" or (path == self.path and (not number or self.line <= int(number) <= self.last)):
                return True
        return False


def parse_accept(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """The ``accept`` parameter: ``"all"``, ``"README.md:19, docs/x.md"`` or a list of such items."""
    if not value:
        return ()
    items = re.split(r"[,\s]+", value) if isinstance(value, str) else [str(v) for v in value]
    return tuple(i.strip().removeprefix("./") for i in items if i.strip())

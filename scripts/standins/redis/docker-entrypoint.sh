#!/usr/bin/env bash
# Entrypoint of the Redis stand-in, as the official image: `redis-server` (or only options, `--appendonly yes`)
# runs in the foreground as the redis user, data in /data, listening on 0.0.0.0:6379 without protected mode
# (the port is only published where compose says: 127.0.0.1). With a config file as first argument the file
# decides instead (as in the official image). Anything else is executed as given.
set -euo pipefail

if [[ "${1:-}" == -* || "${1:-}" == *.conf ]]; then set -- redis-server "$@"; fi

if [[ "${1:-}" == redis-server ]]; then
    shift
    if [[ "${1:-}" != *.conf ]]; then
        set -- --bind 0.0.0.0 --protected-mode no --dir /data "$@"
    fi
    if [[ "$(id -u)" == 0 ]]; then
        chown -R redis:redis /data 2>/dev/null || true
        exec setpriv --reuid=redis --regid=redis --init-groups redis-server "$@"
    fi
    exec redis-server "$@"
fi

exec "$@"

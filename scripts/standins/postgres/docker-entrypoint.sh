#!/usr/bin/env bash
# Entrypoint of the PostgreSQL stand-in: the official image's contract, reduced to what the runbook uses.
#
#   POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_USER (default postgres),
#   POSTGRES_DB (default $POSTGRES_USER), POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD (default
#   scram-sha-256), PGDATA (default /var/lib/postgresql/data), /docker-entrypoint-initdb.d/*.sh|*.sql.
#
# First start (empty PGDATA): initdb with the superuser and password, trust on the local socket only
# while initialising, create POSTGRES_DB, run the init scripts, then password auth from outside.
# The server then runs in the foreground as the postgres user, listening on 0.0.0.0:5432.
set -Eeuo pipefail

# `docker run IMAGE -c shared_buffers=...` means `postgres -c ...`
if [[ "${1:-}" == -* ]]; then set -- postgres "$@"; fi

if [[ "${1:-}" != postgres ]]; then exec "$@"; fi

PGDATA="${PGDATA:-/var/lib/postgresql/data}"
export PGDATA

if [[ "$(id -u)" == 0 ]]; then
    # as root: own the data and socket folders, then re-run this script as postgres
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    POSTGRES_USER="${POSTGRES_USER:-postgres}"
    POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
    auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    if [[ -z "${POSTGRES_PASSWORD:-}" && "$auth" != trust ]]; then
        cat >&2 <<'MSG'
Error: the database is uninitialized and the superuser password is not specified.
       Set POSTGRES_PASSWORD to a non-empty value for the superuser (for example
       "-e POSTGRES_PASSWORD=password" on "docker run"), or POSTGRES_HOST_AUTH_METHOD=trust
       to allow every connection without a password (not recommended).
MSG
        exit 1
    fi
    echo "stand-in entrypoint: initialising $PGDATA for user '$POSTGRES_USER', database '$POSTGRES_DB'"
    pwfile="$(mktemp)"
    printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
    # shellcheck disable=SC2086
    initdb --username="$POSTGRES_USER" ${POSTGRES_PASSWORD:+--pwfile="$pwfile"} \
        --auth-local=trust --auth-host="$auth" --encoding=UTF8 --locale=C.UTF-8 \
        ${POSTGRES_INITDB_ARGS:-} >/dev/null
    rm -f "$pwfile"

    # A private server while initialising: no TCP, and its socket in a private folder, so that the
    # healthcheck (pg_isready on the usual socket) says "not ready" until the real server runs.
    initsock="$(mktemp -d)"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=$initsock" -w start >/dev/null
    export PGHOST="$initsock"
    psql_=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres -q)
    if [[ "$POSTGRES_DB" != postgres ]]; then
        exists="$("${psql_[@]}" -tA -v db="$POSTGRES_DB" <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")"
        if [[ "$exists" != 1 ]]; then
            "${psql_[@]}" -v db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
        fi
    fi
    shopt -s nullglob
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh) echo "stand-in entrypoint: running $f"; bash "$f" ;;
            *.sql) echo "stand-in entrypoint: running $f"; "${psql_[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
            *) echo "stand-in entrypoint: ignoring $f" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    unset PGHOST
    rmdir "$initsock"

    # from outside the container: the password (as the official image's pg_hba.conf)
    printf '\n# stand-in entrypoint: connections from outside the container\nhost all all all %s\n' "$auth" \
        >>"$PGDATA/pg_hba.conf"
    echo "stand-in entrypoint: initialisation complete; ready for start up"
fi

shift
exec postgres -c listen_addresses='*' -c unix_socket_directories=/var/run/postgresql "$@"

#!/bin/sh
# app-entrypoint web|worker [args...]: the sample app's web process (on 0.0.0.0:$PORT) or its BullMQ worker.
set -e
what="${1:-web}"
[ "$#" -gt 0 ] && shift
case "$what" in
web) exec python3 /app/stub/web.py --host 0.0.0.0 --port "${PORT:-3000}" "$@" ;;
worker) exec python3 /app/stub/worker.py "$@" ;;
*) exec "$what" "$@" ;;
esac

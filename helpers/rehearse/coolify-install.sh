#!/bin/bash
## Rehearsal stand-in for Coolify's official installer (https://cdn.coollabs.io/coolify/install.sh).
##
## Task 2.5 uploads and runs it exactly as it does the official script (`sudo bash install.sh [version]`),
## on the droplet stand-in container, which has no internet and no Docker. Instead of Docker and Coolify's
## containers it installs the Coolify API stand-in (helpers/rehearse/coolify.py, uploaded beside this
## script as listed in coolify-install.sh.files) as the systemd service coolify.service on port 8000.
##
## The official script's contract, kept where the runbook relies on it:
##   - runs as root only; refuses unsupported OS ids; warns under 30 GB total / 20 GB free disk, refuses
##     under 5 GB free;
##   - ROOT_USERNAME, ROOT_USER_EMAIL, ROOT_USER_PASSWORD (all three) pre-create the admin (kept in .env);
##   - an optional first argument pins the version ("v" prefix allowed);
##   - creates /data/coolify/{source,ssh,applications,databases,backups,services,proxy,sentinel} and the
##     install marker /data/coolify/source/.env (root only); the dashboard answers on port 8000;
##   - re-running it keeps the existing .env values (it upgrades in place).
## Rehearsal only: COOLIFY_API_TOKEN (a token "created in the dashboard", task 2.6's manual step) and
## COOLIFY_STANDIN_API (enabled|disabled; a fresh Coolify has its API disabled) are kept in .env for the
## service; COOLIFY_STANDIN_VERSION records the version (the official script keeps none in .env).

set -e
set -o pipefail

DEFAULT_VERSION="4.0.0-beta.420"
ENV_FILE="/data/coolify/source/.env"
INSTALL_DIR="/opt/runbook-coolify-standin"
HERE="$(cd "$(dirname "$0")" && pwd)"

if [ "$EUID" != 0 ]; then
    echo "Please run this script as root or with sudo"
    exit 1
fi

OS_TYPE=$(grep -w "ID" /etc/os-release | cut -d "=" -f 2 | tr -d '"')
case "$OS_TYPE" in
ubuntu | debian | raspbian | centos | fedora | rhel | ol | rocky | sles | opensuse-leap | opensuse-tumbleweed | almalinux | amzn | alpine | arch) ;;
*)
    echo "This script only supports Debian, Redhat, Arch Linux, Alpine Linux, or SLES based operating systems for now."
    exit 1
    ;;
esac

VERSION="${1:-$DEFAULT_VERSION}"
VERSION="${VERSION,,}"
VERSION="${VERSION#v}"

TOTAL_SPACE=$(df -BG / | awk 'NR==2 {print $2}' | sed 's/G//')
AVAILABLE_SPACE=$(df -BG / | awk 'NR==2 {print $4}' | sed 's/G//')
if [ "$TOTAL_SPACE" -lt 30 ] || [ "$AVAILABLE_SPACE" -lt 20 ]; then
    echo "WARNING: disk space below the recommended 30 GB total / 20 GB free (${TOTAL_SPACE}GB / ${AVAILABLE_SPACE}GB)"
fi
if [ "$(df -Pm / | awk 'NR==2 {print $4}')" -lt 5120 ]; then
    echo "ERROR: Not enough free disk space to install Coolify safely (5 GB needed)."
    exit 1
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "ERROR: the rehearsal stand-in needs python3 on the server"
    exit 1
fi

echo "---------------------------------------------"
echo "| Operating System  | $OS_TYPE"
echo "| Coolify           | $VERSION (rehearsal stand-in)"
echo "---------------------------------------------"

echo "1/4 Creating /data/coolify ..."
mkdir -p /data/coolify/{source,ssh,applications,databases,backups,services,proxy,sentinel,standin}
chmod 700 /data/coolify

echo "2/4 Installing the Coolify stand-in to $INSTALL_DIR ..."
rm -rf "$INSTALL_DIR.new"
mkdir -p "$INSTALL_DIR.new"
cp -r "$HERE/helpers" "$INSTALL_DIR.new/"
rm -rf "$INSTALL_DIR"
mv "$INSTALL_DIR.new" "$INSTALL_DIR"

# The droplet stand-in has the host's Docker socket but no docker CLI: `docker inspect` (all the runbook runs
# on the server) is answered by helpers/rehearse/dockercli.py. A real docker is never replaced.
if ! command -v docker >/dev/null 2>&1 || grep -q "rehearsal stand-in" /usr/local/bin/docker 2>/dev/null; then
    cat >/usr/local/bin/docker <<SHIM
#!/bin/sh
# docker (rehearsal stand-in: helpers.rehearse.dockercli): \`docker inspect\` over the Docker socket
exec env PYTHONPATH=$INSTALL_DIR python3 -m helpers.rehearse.dockercli "\$@"
SHIM
    chmod 755 /usr/local/bin/docker
fi

echo "3/4 Setting up the environment variable file $ENV_FILE ..."
touch "$ENV_FILE"
chmod 600 "$ENV_FILE"
# As the official script: add a key when missing or empty, never change an existing value.
update_env_var() {
    local key="$1" value="$2"
    if grep -q "^${key}=$" "$ENV_FILE"; then
        sed -i "/^${key}=$/d" "$ENV_FILE"
        printf '%s=%s\n' "$key" "$value" >>"$ENV_FILE"
    elif ! grep -q "^${key}=" "$ENV_FILE"; then
        printf '%s=%s\n' "$key" "$value" >>"$ENV_FILE"
    fi
}
# Values the installer itself decides (a pinned version, the switches of the rehearsal).
set_env_var() {
    local key="$1" value="$2"
    sed -i "/^${key}=/d" "$ENV_FILE"
    printf '%s=%s\n' "$key" "$value" >>"$ENV_FILE"
}
update_env_var APP_ID "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
update_env_var APP_KEY "base64:$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
set_env_var COOLIFY_STANDIN_VERSION "$VERSION"
if [ -n "${ROOT_USERNAME:-}" ] && [ -n "${ROOT_USER_EMAIL:-}" ] && [ -n "${ROOT_USER_PASSWORD:-}" ]; then
    echo " - Setting predefined root user credentials from environment"
    update_env_var ROOT_USERNAME "$ROOT_USERNAME"
    update_env_var ROOT_USER_EMAIL "$ROOT_USER_EMAIL"
    update_env_var ROOT_USER_PASSWORD "$ROOT_USER_PASSWORD"
fi
if [ -n "${COOLIFY_API_TOKEN:-}" ]; then
    echo " - Registering the API token given in the environment (rehearsal of task 2.6)"
    set_env_var COOLIFY_API_TOKEN "$COOLIFY_API_TOKEN"
fi
if [ -n "${COOLIFY_STANDIN_API:-}" ]; then
    set_env_var COOLIFY_STANDIN_API "$COOLIFY_STANDIN_API"
fi

echo "4/4 Starting coolify.service on port 8000 ..."
cat >/etc/systemd/system/coolify.service <<'UNIT'
[Unit]
Description=Coolify (rehearsal stand-in: helpers.rehearse.coolify)
After=network.target

[Service]
EnvironmentFile=/data/coolify/source/.env
Environment=PYTHONPATH=/opt/runbook-coolify-standin
ExecStart=/usr/bin/python3 -m helpers.rehearse.coolify --host 0.0.0.0 --port 8000 --state-file /data/coolify/standin/state.json
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable coolify.service >/dev/null 2>&1
systemctl restart coolify.service

for _ in $(seq 1 60); do
    if curl -fsS -m 2 http://127.0.0.1:8000/api/health >/dev/null 2>&1; then
        echo " - Coolify is ready!"
        echo ""
        echo "Your instance is ready to use!"
        echo "You can access Coolify through port 8000 of this server's public IP."
        exit 0
    fi
    sleep 1
done
echo " - ERROR: Coolify did not answer on port 8000 within 60s. Please check: systemctl status coolify"
systemctl status coolify.service --no-pager || true
journalctl -u coolify.service -n 20 --no-pager || true
exit 1

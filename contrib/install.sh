#!/usr/bin/env bash
# Installs (or upgrades) WebboMonitor on Debian 12 / Ubuntu 24.04 as a systemd service.
#
#   sudo bash contrib/install.sh                # install from this source tree and start it
#   sudo bash contrib/install.sh --no-start     # install, do not (re)start the service
#   sudo bash contrib/install.sh --root DIR     # install into DIR as if it were / (dry run,
#                                               # used by the tests; DIR/etc must hold passwd,
#                                               # group, shadow, gshadow)
#
# What it does (each step only if needed, so running it twice is harmless and an upgrade keeps
# the config and the state):
#   * Debian packages python3 and python3-venv;
#   * system user and group "webbo", member of "dialout" (RS485 adapters);
#   * /opt/webbo/venv with WebboMonitor and its dependencies (upgraded in place);
#   * /etc/webbo/webbo.toml from the sample (scans nothing; listens on port 80 of all
#     interfaces; state in /var/lib/webbo) — never overwritten once it exists;
#   * /var/lib/webbo (0700, webbo) for users, API keys, the inventory, the audit log and the
#     outputs' disk buffers (the config turns them on: buffer = "disk");
#   * /etc/systemd/system/webbo.service, enabled and (re)started;
#   * /usr/local/bin/webbo for the administrator (webbo status, webbo user set-password, ...).
set -euo pipefail

SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT=/
START=1
while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT="$(cd "$2" && pwd)"; shift 2 ;;
        --source) SOURCE="$2"; shift 2 ;;
        --no-start) START=0; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done
[ "$ROOT" = "/" ] && R="" || R="$ROOT"

if [ "$(id -u)" != 0 ]; then
    echo "Run as root (sudo bash $0)." >&2
    exit 1
fi

say() { printf '==> %s\n' "$*"; }

# -- packages --------------------------------------------------------------------------------
if [ -z "$R" ]; then
    missing=()
    for pkg in python3 python3-venv; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
fi
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "Python 3.11 or newer is required" >&2; exit 1; }

# -- user ------------------------------------------------------------------------------------
prefix_args=()
[ -n "$R" ] && prefix_args=(--prefix "$R")
if ! grep -q '^webbo:' "$R/etc/passwd"; then
    say "creating system user webbo"
    useradd "${prefix_args[@]}" --system --user-group --home-dir /var/lib/webbo \
        --no-create-home --shell /usr/sbin/nologin --comment "WebboMonitor agent" webbo
fi
if grep -q '^dialout:' "$R/etc/group" \
        && ! grep -q '^dialout:.*[:,]webbo\(,\|$\)' "$R/etc/group"; then
    say "adding webbo to dialout"
    usermod "${prefix_args[@]}" -a -G dialout webbo
fi
WEBBO_UID=$(awk -F: '$1 == "webbo" {print $3}' "$R/etc/passwd")
WEBBO_GID=$(awk -F: '$1 == "webbo" {print $4}' "$R/etc/passwd")

# -- folders ---------------------------------------------------------------------------------
install -d -m 0755 -o 0 -g 0 "$R/opt/webbo" "$R/etc/systemd/system" "$R/usr/local/bin"
install -d -m 0770 -o 0 -g "$WEBBO_GID" "$R/etc/webbo"
install -d -m 0700 -o "$WEBBO_UID" -g "$WEBBO_GID" "$R/var/lib/webbo"

# -- the software ----------------------------------------------------------------------------
VENV="$R/opt/webbo/venv"
if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
say "installing WebboMonitor from $SOURCE"
if command -v uv >/dev/null 2>&1; then
    uv pip install -q --python "$VENV/bin/python" --upgrade "$SOURCE"
else
    "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade "$SOURCE"
fi
ln -sfn /opt/webbo/venv/bin/webbo "$R/usr/local/bin/webbo"
install -d -m 0755 "$R/opt/webbo/docs"
cp "$SOURCE"/docs/*.md "$R/opt/webbo/docs/" 2>/dev/null || true
# The operator's manual says the API documentation is in /opt/m0n/docs/API.md after install.
install -d -m 0755 "$R/opt/m0n"
ln -sfn /opt/webbo/docs "$R/opt/m0n/docs"

# -- config ----------------------------------------------------------------------------------
CONFIG="$R/etc/webbo/webbo.toml"
if [ ! -e "$CONFIG" ]; then
    say "writing $CONFIG (from the sample; it scans nothing)"
    "$VENV/bin/python" - "$SOURCE/webbo.toml" "$CONFIG" <<'PY'
import sys

import tomlkit

sample, target = sys.argv[1], sys.argv[2]
doc = tomlkit.parse(open(sample, encoding="utf-8").read())
web = doc["web"]
# The manual's http://<server>/: port 80 on every interface; state in /var/lib/webbo.
web["listen"] = "0.0.0.0:80"
web["state_dir"] = "/var/lib/webbo"
# Outputs keep what their server has not taken on disk (/var/lib/webbo/buffers/<output>):
# an outage, a restart or a power cut loses nothing (docs/deploy.md, "Outages").
for tables in doc.get("outputs", {}).values():
    for table in tables:
        table["buffer"] = "disk"
        table["buffer_max_bytes"] = "1GB"
with open(target, "w", encoding="utf-8") as handle:
    handle.write(tomlkit.dumps(doc))
PY
    chown 0:"$WEBBO_GID" "$CONFIG"
    chmod 0660 "$CONFIG"
else
    say "keeping $CONFIG"
    if ! "$VENV/bin/webbo" config check -c "$CONFIG" >/dev/null 2>&1; then
        echo "WARNING: $CONFIG does not pass 'webbo config check' with this version:" >&2
        "$VENV/bin/webbo" config check -c "$CONFIG" >&2 || true
    fi
fi
if [ ! -e "$R/etc/webbo/environment" ]; then
    install -m 0640 -o 0 -g "$WEBBO_GID" /dev/null "$R/etc/webbo/environment"
    echo "# KEY=value lines for \${KEY} in webbo.toml (e.g. INFLUX_PASSWORD=...)" \
        > "$R/etc/webbo/environment"
fi

# -- service ---------------------------------------------------------------------------------
install -m 0644 -o 0 -g 0 "$SOURCE/contrib/webbo.service" "$R/etc/systemd/system/webbo.service"
if [ -z "$R" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable webbo.service >/dev/null
    if [ "$START" = 1 ]; then
        say "starting webbo"
        systemctl restart webbo.service
        echo
        echo "WebboMonitor runs. Open http://$(hostname -I 2>/dev/null | awk '{print $1}')/"
        echo "User: miner. The generated password was printed once at the first start:"
        echo "    journalctl -u webbo | grep -i password"
        echo "Set your own with:  sudo -u webbo webbo user set-password -c /etc/webbo/webbo.toml"
    fi
else
    echo
    echo "Installed into ${R:-/}. Start it with:  systemctl daemon-reload && systemctl enable --now webbo"
fi

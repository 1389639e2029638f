#!/usr/bin/env bash
# Prepares a development environment in .venv (Python >= 3.11): the project, editable, with its
# test extras. Sourced by demo.sh and test.sh; safe to run again (it only adds what is missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "WebboMonitor needs Python 3.11 or newer ($PYTHON is $("$PYTHON" -V 2>&1))." >&2
    exit 1
fi

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else return 1; fi; }
APT_UPDATED=0
apt_install() {
    # apt_install PKG... : install the Debian packages that are missing, or say how to.
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "Missing Debian packages: ${missing[*]}" >&2
        echo "Run:  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    if [ "$APT_UPDATED" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    echo "Installing Debian packages: ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
    apt_install python3-venv
fi

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# Installed already, from this very pyproject.toml? Then nothing is asked of any registry: the
# two README commands run offline once installed. A stamp per extra names what was installed
# (the demo's extra adds nothing, so any install serves it).
EXTRAS="${WEBBO_EXTRAS:-test}"
WANT="$(sha256sum pyproject.toml | cut -d' ' -f1) $("$PYTHON" -V 2>&1)"
installed() { [ -f ".venv/.webbo-installed-$1" ] && [ "$(cat ".venv/.webbo-installed-$1")" = "$WANT" ]; }
if { installed "$EXTRAS" || { [ "$EXTRAS" = demo ] && installed test; }; } \
        && .venv/bin/python -c "import webbo.agent.cli" 2>/dev/null; then
    return 0 2>/dev/null || exit 0
fi
if [ ! -x .venv/bin/uv ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check uv
fi
.venv/bin/uv pip install -q --python .venv/bin/python -e ".[${EXTRAS}]"
echo "$WANT" > ".venv/.webbo-installed-$EXTRAS"

#!/usr/bin/env bash
# Runs test_twilio_client.py (the official `twilio` helper library against a running assetd),
# or the script named by the first argument (which reads its own environment).
#
# Without an argument, needs PORT, ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID and VERSION_SID in the
# environment.
# Creates a venv with `python3 -m venv` in $ASSETD_PYVENV (default: target/pyvenv), installs
# `twilio` there once, and exits non-zero when anything fails, including a missing python3,
# venv module or pip. Exit 4: installing `twilio` from PyPI failed (offline?).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${ASSETD_PYVENV:-$root/target/pyvenv}"
requirement="twilio>=9,<10"

script="${1:-$here/test_twilio_client.py}"
for v in PORT ACCOUNT_SID AUTH_TOKEN SERVICE_SID VERSION_SID; do
    if [ $# -eq 0 ] && [ -z "${!v:-}" ]; then
        echo "run.sh: $v is not set" >&2
        exit 2
    fi
done

command -v python3 >/dev/null || { echo "run.sh: python3 is not installed" >&2; exit 3; }

mkdir -p "$(dirname "$venv")"
# One creator at a time (parallel test runs share the venv).
exec 9>"$venv.lock"
if command -v flock >/dev/null; then
    flock 9
fi
if ! "$venv/bin/python" -c 'import twilio' 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv" || { echo "run.sh: python3 -m venv failed (install python3-venv)" >&2; exit 3; }
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$requirement" \
        || { rm -rf "$venv"; echo "run.sh: pip install $requirement failed (it needs PyPI: https://pypi.org)" >&2; exit 4; }
fi
exec 9>&-

exec "$venv/bin/python" "$script"

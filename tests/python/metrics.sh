#!/usr/bin/env bash
# Parses Prometheus text (version 0.0.4) from stdin with the official Python client's parser
# (`prometheus_client.parser`) and prints one line per sample: `name{k="v",…} value`, labels
# sorted. Exits non-zero when the text does not parse.
#
# Creates a venv with `python3 -m venv` in $ASSETD_METRICS_VENV (default:
# target/pyvenv-metrics) and installs `prometheus_client` there once.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${ASSETD_METRICS_VENV:-$root/target/pyvenv-metrics}"
requirement="prometheus_client>=0.20,<1"

command -v python3 >/dev/null || { echo "metrics.sh: python3 is not installed" >&2; exit 3; }

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
if command -v flock >/dev/null; then
    flock 9
fi
if ! "$venv/bin/python" -c 'import prometheus_client' 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv" || { echo "metrics.sh: python3 -m venv failed (install python3-venv)" >&2; exit 3; }
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$requirement" \
        || { echo "metrics.sh: pip install $requirement failed" >&2; exit 3; }
fi
exec 9>&-

exec "$venv/bin/python" -c '
import sys
from prometheus_client.parser import text_string_to_metric_families
text = sys.stdin.read()
families = list(text_string_to_metric_families(text))
if not families:
    sys.exit("no metric families")
for f in families:
    if f.type not in ("counter", "gauge", "histogram"):
        sys.exit(f"{f.name}: unexpected type {f.type}")
    for s in f.samples:
        labels = ",".join(f"{k}=\"{v}\"" for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{labels}}} {s.value!r}")
'

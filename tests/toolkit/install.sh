#!/usr/bin/env bash
# Installs Twilio's Serverless Toolkit for tests/it/toolkit.rs: twilio-run 5.0.1 and
# @twilio-labs/serverless-api 5.7.0, exactly as pinned in package-lock.json, into
# tests/toolkit/node_modules. Node and npm come from Debian when missing (needs root then).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends nodejs npm
fi
npm ci --no-audit --no-fund

#!/usr/bin/env bash
# Runs the whole test suite: unit tests, end-to-end tests against the real
# gateway binary with mock providers, and the official-SDK conformance tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --python
export SWITCHYARD_PYTHON="$PWD/.venv/bin/python"
cargo test --workspace --locked "$@"
# The Debian package: built with cargo-deb, inspected, and exercised
# (systemd unit verification, packaged binary, supervised upgrade).
scripts/test_packaging.sh

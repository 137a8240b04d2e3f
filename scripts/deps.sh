#!/usr/bin/env bash
# Installs what building and testing Switchyard needs on a fresh Debian/Ubuntu
# machine: cmake (Pingora's zlib-ng build), a C compiler, pkg-config, and — with
# `--python` — a virtualenv in .venv with the official OpenAI/Anthropic SDKs
# used by the conformance tests. Idempotent: does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
if [ "${1:-}" = "--python" ]; then
  command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${need_apt[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust (https://rustup.rs, stable >= 1.85) and re-run" >&2
  exit 1
fi
if [ "${1:-}" = "--python" ]; then
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  if ! .venv/bin/python -c 'import openai, anthropic, pytest' >/dev/null 2>&1; then
    .venv/bin/pip install -q --disable-pip-version-check -r tests/python/requirements.txt
  fi
fi

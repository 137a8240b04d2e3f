"""Fixtures for SDK conformance tests against a running Switchyard gateway.

These tests are driven by `cargo test --test e2e sdk` (tests/e2e/sdk.rs), which starts a mock
OpenAI upstream and the gateway, then runs pytest with:

    SWITCHYARD_BASE_URL     the gateway's OpenAI base URL, e.g. http://127.0.0.1:1234/v1
    SWITCHYARD_API_KEY      the gateway's master key
    SWITCHYARD_CHAT_MODEL   a chat model the gateway routes to the mock, e.g. gpt-4o-mini
    SWITCHYARD_EMBED_MODEL  an embedding model routed to the mock, e.g. text-embedding-3-small

A missing variable fails the tests (never skips them).
"""

from __future__ import annotations

import os

import pytest


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        pytest.fail(
            f"{name} is not set: these tests run against a live gateway; "
            "run them through `cargo test --test e2e sdk` (tests/e2e/sdk.rs)",
            pytrace=False,
        )
    return value


@pytest.fixture(scope="session")
def base_url() -> str:
    return _env("SWITCHYARD_BASE_URL").rstrip("/")


@pytest.fixture(scope="session")
def api_key() -> str:
    return _env("SWITCHYARD_API_KEY")


@pytest.fixture(scope="session")
def chat_model() -> str:
    return _env("SWITCHYARD_CHAT_MODEL")


@pytest.fixture(scope="session")
def embed_model() -> str:
    return _env("SWITCHYARD_EMBED_MODEL")


@pytest.fixture(scope="session")
def openai_client(base_url: str, api_key: str):
    import openai

    # No retries: a retried request would hide a gateway error behind a second upstream call.
    with openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30.0) as client:
        yield client


# --- Translated dialects: test_anthropic_sdk.py, test_openai_sdk_translated.py -----------------
#
# Driven by `cargo test --test e2e sdk_translated` (tests/e2e/sdk_translated.rs), which starts the
# OpenAI, Anthropic and Gemini mock providers and the gateway, then runs pytest with:
#
#     SWITCHYARD_BASE_URL        the gateway ROOT, e.g. http://127.0.0.1:1234 (no /v1: the
#                                Anthropic SDK appends /v1/messages itself)
#     SWITCHYARD_API_KEY         the gateway's master key
#     SWITCHYARD_MODEL_OPENAI    a model the gateway serves from the OpenAI mock
#     SWITCHYARD_MODEL_ANTHROPIC a model the gateway serves from the Anthropic mock
#     SWITCHYARD_MODEL_GEMINI    a model the gateway serves from the Gemini mock
#
# Optional: SWITCHYARD_ANTHROPIC_AUTH=x-api-key makes the `anthropic_client` fixture send the key
# as `x-api-key` (Vercel AI SDK style) instead of the SDK's `Authorization: Bearer`.

BACKENDS = ("openai", "anthropic", "gemini")


@pytest.fixture(scope="session")
def gateway_root() -> str:
    """The gateway root URL (a trailing ``/v1`` is tolerated and removed)."""
    root = _env("SWITCHYARD_BASE_URL").rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


@pytest.fixture(scope="session")
def model_for():
    """``model_for(backend)``: the model the gateway serves from that mock provider."""

    def lookup(backend: str) -> str:
        assert backend in BACKENDS, backend
        return _env(f"SWITCHYARD_MODEL_{backend.upper()}")

    return lookup


def make_anthropic_client(gateway_root: str, key: str, *, style: str = "bearer", **kwargs):
    """An ``anthropic.Anthropic`` for the gateway, no retries, sending ``key`` as
    ``Authorization: Bearer`` (``style="bearer"``, what ``api_key=`` does in SDK 2.x),
    ``auth_token`` (``style="auth_token"``) or ``x-api-key`` (``style="x-api-key"``)."""
    import anthropic

    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 30.0)
    if style == "bearer":
        return anthropic.Anthropic(base_url=gateway_root, api_key=key, **kwargs)
    if style == "auth_token":
        return anthropic.Anthropic(base_url=gateway_root, auth_token=key, **kwargs)
    if style == "x-api-key":
        headers = {"x-api-key": key, **kwargs.pop("default_headers", {})}
        return anthropic.Anthropic(base_url=gateway_root, api_key=None, auth_token=None, default_headers=headers, **kwargs)
    raise ValueError(style)


@pytest.fixture(scope="session")
def anthropic_client(gateway_root: str, api_key: str):
    style = os.environ.get("SWITCHYARD_ANTHROPIC_AUTH", "bearer") or "bearer"
    with make_anthropic_client(gateway_root, api_key, style=style) as client:
        yield client


@pytest.fixture(scope="session")
def openai_gateway_client(gateway_root: str, api_key: str):
    """An ``openai.OpenAI`` for the gateway's ``/v1`` (no retries)."""
    import openai

    with openai.OpenAI(base_url=gateway_root + "/v1", api_key=api_key, max_retries=0, timeout=30.0) as client:
        yield client

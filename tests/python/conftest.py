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

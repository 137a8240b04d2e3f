"""The official SDKs' stream helpers against answers served by a fallback in the other dialect.

Run by tests/e2e/failover.rs (`sdks_accept_answers_served_by_a_fallback_in_the_other_dialect`): the
OpenAI mock answers 503 for SWITCHYARD_FAILOVER_OPENAI_MODEL, whose fallback is the Anthropic mock;
the Anthropic mock answers 529 for SWITCHYARD_FAILOVER_ANTHROPIC_MODEL, whose fallback is the OpenAI
mock. Each SDK must accept the translated answer, streamed through its helper or not, as if its own
provider had sent it.
"""

from __future__ import annotations

import os

import anthropic
import openai
import pytest

from _mock import reply_for

ANTHROPIC_REPLY = "Hello from Anthropic mock"
PROMPT = "Say hello"


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        pytest.fail(f"{name} is not set: run through tests/e2e/failover.rs", pytrace=False)
    return value


@pytest.fixture(scope="module")
def oai():
    root = _env("SWITCHYARD_BASE_URL").rstrip("/")
    with openai.OpenAI(base_url=f"{root}/v1", api_key=_env("SWITCHYARD_API_KEY"), max_retries=0, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def ant():
    root = _env("SWITCHYARD_BASE_URL").rstrip("/")
    with anthropic.Anthropic(base_url=root, api_key=_env("SWITCHYARD_API_KEY"), max_retries=0, timeout=30) as c:
        yield c


def test_openai_stream_helper_accepts_an_anthropic_fallback(oai):
    model = _env("SWITCHYARD_FAILOVER_OPENAI_MODEL")
    with oai.chat.completions.stream(model=model, messages=[{"role": "user", "content": PROMPT}]) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == ANTHROPIC_REPLY
    assert final.choices[0].message.content == ANTHROPIC_REPLY
    assert final.choices[0].finish_reason == "stop"


def test_openai_create_reports_the_fallback_in_headers(oai):
    model = _env("SWITCHYARD_FAILOVER_OPENAI_MODEL")
    raw = oai.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": PROMPT}]
    )
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == ANTHROPIC_REPLY
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert raw.headers["x-switchyard-provider"] == "anthropic"
    assert raw.headers["x-switchyard-attempts"] == "2"


def test_anthropic_stream_helper_accepts_an_openai_fallback(ant):
    model = _env("SWITCHYARD_FAILOVER_ANTHROPIC_MODEL")
    with ant.messages.stream(
        model=model, max_tokens=64, messages=[{"role": "user", "content": PROMPT}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == reply_for(PROMPT)
    assert final.content[0].type == "text" and final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_anthropic_create_accepts_an_openai_fallback(ant):
    model = _env("SWITCHYARD_FAILOVER_ANTHROPIC_MODEL")
    raw = ant.messages.with_raw_response.create(
        model=model, max_tokens=64, messages=[{"role": "user", "content": PROMPT}]
    )
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].text == reply_for(PROMPT)
    assert raw.headers["x-switchyard-provider"] == "openai"

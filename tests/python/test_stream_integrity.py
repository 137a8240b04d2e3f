"""Broken provider streams through the gateway, as the official SDKs see them.

The gateway runs in front of hostile mock providers (tests/e2e/integrity.rs): each model name is
one failure. Every one of them must surface as an exception in the SDK, never as a truncated but
"successful" answer.
"""

from __future__ import annotations

import os

import anthropic
import openai
import pytest

BASE = os.environ["SWITCHYARD_BASE_URL"]
KEY = os.environ["SWITCHYARD_API_KEY"]


@pytest.fixture(scope="module")
def oai() -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{BASE}/v1", api_key=KEY, max_retries=0, timeout=30)


@pytest.fixture(scope="module")
def ant() -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=BASE, api_key=KEY, max_retries=0, timeout=30)


MSG = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("model", ["truncated", "cut-mid-event", "malformed-event", "stall"])
def test_openai_iteration_raises(oai: openai.OpenAI, model: str) -> None:
    got = ""
    with pytest.raises(openai.APIError) as e:
        for chunk in oai.chat.completions.create(model=model, messages=MSG, stream=True):
            if chunk.choices:
                got += chunk.choices[0].delta.content or ""
    assert got == "Hello"
    assert "openai" in str(e.value)


@pytest.mark.parametrize("model", ["truncated", "stall"])
def test_openai_stream_helper_raises(oai: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.APIError):
        with oai.chat.completions.stream(model=model, messages=MSG) as s:
            s.get_final_completion()


def test_openai_stream_helper_accepts_a_replayed_json_answer(oai: openai.OpenAI) -> None:
    with oai.chat.completions.stream(model="json-for-stream", messages=MSG) as s:
        final = s.get_final_completion()
    assert final.choices[0].message.content == "Hello from JSON"


@pytest.mark.parametrize("model", ["claude-no-start", "claude-truncated"])
def test_anthropic_stream_helper_raises(ant: anthropic.Anthropic, model: str) -> None:
    with pytest.raises(anthropic.APIStatusError) as e:
        with ant.messages.stream(model=model, max_tokens=16, messages=MSG) as s:
            s.get_final_message()
    assert "anthropic-east" in str(e.value)


def test_anthropic_sdk_reads_the_matched_stop_sequence(ant: anthropic.Anthropic) -> None:
    with ant.messages.stream(model="vllm-stop", max_tokens=16, messages=MSG) as s:
        m = s.get_final_message()
    assert (m.stop_reason, m.stop_sequence) == ("stop_sequence", "THREE")

"""The official SDKs' stream helpers over a real llama.cpp server, through the gateway
(tests/e2e/local_model.rs starts both)."""

from __future__ import annotations

import os

import anthropic
import openai
import pytest

BASE = os.environ["SWITCHYARD_BASE_URL"]
KEY = os.environ["SWITCHYARD_API_KEY"]
MODEL = os.environ["SWITCHYARD_LOCAL_MODEL"]

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


@pytest.fixture(scope="module")
def oai() -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{BASE}/v1", api_key=KEY, max_retries=0, timeout=180)


@pytest.fixture(scope="module")
def ant() -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=BASE, api_key=KEY, max_retries=0, timeout=180)


def test_openai_stream_helper_builds_one_tool_call(oai: openai.OpenAI) -> None:
    with oai.chat.completions.stream(
        model=MODEL,
        temperature=0,
        max_tokens=40,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
    ) as s:
        final = s.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert calls and len(calls) == 1
    assert calls[0].function.name == "get_weather"
    assert calls[0].id.count("call_") == 1


def test_openai_stream_reports_estimated_usage_when_asked(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model=MODEL,
            temperature=0,
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "Say hi"}],
        )
    )
    usage = [c.usage for c in chunks if c.usage]
    assert usage and usage[-1].prompt_tokens > 0 and usage[-1].completion_tokens > 0


def test_anthropic_stream_helper_sees_tokens(ant: anthropic.Anthropic) -> None:
    with ant.messages.stream(
        model=MODEL, max_tokens=12, messages=[{"role": "user", "content": "Say hi"}]
    ) as s:
        m = s.get_final_message()
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0
    assert m.content and m.content[0].type == "text"


def test_anthropic_tool_round_trip(ant: anthropic.Anthropic) -> None:
    m = ant.messages.create(
        model=MODEL,
        max_tokens=16,
        tools=[
            {
                "name": "get_weather",
                "description": "Get the weather for a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            }
        ],
        messages=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "18 degrees"}]},
        ],
    )
    assert m.type == "message" and m.usage.output_tokens > 0

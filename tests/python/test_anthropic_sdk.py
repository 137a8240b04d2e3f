"""The official `anthropic` Python SDK against Switchyard's Anthropic Messages API (`/v1/messages`),
served by each kind of provider: the OpenAI, Anthropic and Gemini mocks.

Run by tests/e2e/sdk_translated.rs (see conftest.py for the environment). Expected values come from
the mocks' deterministic rules (tests/e2e/support/mock.rs, mock_anthropic.rs, mock_gemini.rs):
a chat answers a fixed reply per provider unless the last user text starts with "echo:", usage
counts words (input: words of the prompt texts; output: one token per word of the answer), the
Anthropic and Gemini mocks call the first tool (every tool after "parallel:") with string
arguments "Paris, Île-de-France" and answer tool results with "The tool said: <results>", and
thinking produces a fixed thought.
"""

from __future__ import annotations

import json

import anthropic
import httpx2
import pytest

from _mock import pieces, reply_for, token_count
from conftest import make_anthropic_client

# The SDK warns that the mock's model ids (claude-sonnet-4-5, …) are deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

BACKENDS = ["openai", "anthropic", "gemini"]
TOOL_BACKENDS = ["anthropic", "gemini"]  # the OpenAI mock never calls tools
THINKING_BACKENDS = ["anthropic", "gemini"]

REPLY = {
    "openai": "Hello from mock",
    "anthropic": "Hello from Anthropic mock",
    "gemini": "Hello from Gemini mock",
}
THOUGHT = {
    "anthropic": "The user wants a short answer → reply briefly.",
    "gemini": "**Planning the reply**\nThe user wants a short answer → reply briefly.",
}
TOOL_PREAMBLE = {"anthropic": "Let me check that.", "gemini": None}
TOOL_RESULT_PREFIX = "The tool said: "
TOOL_STRING = "Paris, Île-de-France"  # every string argument the mocks make up
TOOL_OUTPUT = "18°C and sunny"
UNKNOWN_MODEL = "no-such-model-xyz"

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city"],
        # Pydantic-generated schemas carry this; Gemini rejects it, so the gateway must strip it.
        "additionalProperties": False,
    },
}
EXPECTED_INPUT = {"city": TOOL_STRING}
TIME_TOOL = {
    "name": "get_time",
    "description": "Local time in a timezone",
    "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
}
THINKING = {"type": "enabled", "budget_tokens": 1024}
UNICODE_PROMPT = 'echo: Grüße, 世界 🚀 "quoted" \\ back\nslash'


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def texts(message) -> list[str]:
    return [block.text for block in message.content if block.type == "text"]


def single_text(message) -> str:
    found = texts(message)
    assert len(found) == 1, message.content
    return found[0]


def tool_uses(message) -> list:
    return [block for block in message.content if block.type == "tool_use"]


# --- text ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_create_text_and_usage(anthropic_client, model_for, backend):
    message = anthropic_client.messages.create(
        model=model_for(backend), max_tokens=256, messages=user("Say hello please")
    )

    assert message.type == "message"
    assert message.role == "assistant"
    assert message.id.startswith("msg_"), message.id
    assert single_text(message) == REPLY[backend]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == token_count("Say hello please")
    assert message.usage.output_tokens == len(pieces(REPLY[backend]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_create_round_trips_unicode_and_system(anthropic_client, model_for, backend):
    message = anthropic_client.messages.create(
        model=model_for(backend), max_tokens=256, system="You are terse.", messages=user(UNICODE_PROMPT)
    )

    assert single_text(message) == reply_for(UNICODE_PROMPT)
    assert message.usage.input_tokens == token_count("You are terse.") + token_count(UNICODE_PROMPT)


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_tokens_stop_reason(anthropic_client, model_for, backend):
    message = anthropic_client.messages.create(
        model=model_for(backend), max_tokens=2, messages=user("echo: one two three four")
    )

    assert single_text(message) == "one two "
    assert message.stop_reason == "max_tokens"


@pytest.mark.parametrize("backend", BACKENDS)
def test_stream_helper_final_message(anthropic_client, model_for, backend):
    deltas: list[str] = []
    kinds: list[str] = []
    with anthropic_client.messages.stream(
        model=model_for(backend), max_tokens=256, messages=user(UNICODE_PROMPT)
    ) as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "text":
                deltas.append(event.text)
        final = stream.get_final_message()

    expected = reply_for(UNICODE_PROMPT)
    assert "".join(deltas) == expected
    assert single_text(final) == expected
    assert final.stop_reason == "end_turn"
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop", kinds
    assert kinds.count("message_start") == 1 and kinds.count("message_stop") == 1
    assert final.usage.input_tokens == token_count(UNICODE_PROMPT)
    assert final.usage.output_tokens == len(pieces(expected))


@pytest.mark.parametrize("backend", BACKENDS)
def test_stream_text_stream_and_max_tokens(anthropic_client, model_for, backend):
    with anthropic_client.messages.stream(
        model=model_for(backend), max_tokens=2, messages=user("echo: one two three four")
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text == "one two "
    assert final.stop_reason == "max_tokens"


@pytest.mark.parametrize("backend", BACKENDS)
def test_raw_response_shape(gateway_root, api_key, model_for, backend):
    """The non-streamed body has every member of a Messages API response (strict clients validate
    them), nothing of another dialect."""
    headers = {"x-api-key": api_key, "anthropic-version": "2023-06-01"}
    body = {"model": model_for(backend), "max_tokens": 64, "messages": user("Say hello please")}
    resp = httpx2.post(gateway_root + "/v1/messages", json=body, headers=headers, timeout=30.0)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    message = resp.json()
    assert message["type"] == "message" and message["role"] == "assistant", message
    assert isinstance(message["id"], str) and message["id"], message
    assert isinstance(message["model"], str) and message["model"], message
    assert [(b["type"], b["text"]) for b in message["content"]] == [("text", REPLY[backend])], message
    assert message["stop_reason"] == "end_turn"
    assert "stop_sequence" in message and message["stop_sequence"] is None, message
    usage = message["usage"]
    assert usage["input_tokens"] == token_count("Say hello please"), usage
    assert usage["output_tokens"] == len(pieces(REPLY[backend])), usage
    assert not {"choices", "object", "candidates"} & set(message), message


@pytest.mark.parametrize("backend", BACKENDS)
def test_count_tokens(anthropic_client, model_for, backend):
    counted = anthropic_client.messages.count_tokens(
        model=model_for(backend), system="You are terse.", messages=user("Say hello please")
    )

    assert isinstance(counted.input_tokens, int)
    assert counted.input_tokens > 0
    if backend == "anthropic":
        # Forwarded to the provider, which counts words.
        assert counted.input_tokens == token_count("You are terse.") + token_count("Say hello please")


# --- tools -----------------------------------------------------------------------------------


def _check_tool_call(message, backend: str):
    calls = tool_uses(message)
    assert len(calls) == 1, message.content
    call = calls[0]
    assert call.name == "get_weather"
    assert isinstance(call.input, dict)
    assert call.input == EXPECTED_INPUT
    assert call.id
    assert message.stop_reason == "tool_use"
    preamble = TOOL_PREAMBLE[backend]
    assert texts(message) == ([preamble] if preamble else []), message.content
    return call


@pytest.mark.parametrize("backend", TOOL_BACKENDS)
def test_tool_use(anthropic_client, model_for, backend):
    message = anthropic_client.messages.create(
        model=model_for(backend), max_tokens=512, tools=[WEATHER_TOOL], messages=user("Weather in Paris?")
    )
    _check_tool_call(message, backend)


@pytest.mark.parametrize("backend", TOOL_BACKENDS)
def test_tool_use_streamed(anthropic_client, model_for, backend):
    partial: list[str] = []
    with anthropic_client.messages.stream(
        model=model_for(backend), max_tokens=512, tools=[WEATHER_TOOL], messages=user("Weather in Paris?")
    ) as stream:
        for event in stream:
            if event.type == "input_json":
                partial.append(event.partial_json)
        final = stream.get_final_message()

    _check_tool_call(final, backend)
    assert json.loads("".join(partial)) == EXPECTED_INPUT


@pytest.mark.parametrize("stream_second_turn", [False, True], ids=["create", "stream"])
@pytest.mark.parametrize("backend", TOOL_BACKENDS)
def test_tool_loop(anthropic_client, model_for, backend, stream_second_turn):
    """Call, tool result, answer. Against Gemini this only works if the thought signature of the
    function call survives the round trip through the caller (the mock rejects the turn otherwise)."""
    model = model_for(backend)
    messages = user("Weather in Paris?")
    first = anthropic_client.messages.create(model=model, max_tokens=512, tools=[WEATHER_TOOL], messages=messages)
    call = _check_tool_call(first, backend)

    messages = [
        *messages,
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": TOOL_OUTPUT}]},
    ]
    if stream_second_turn:
        with anthropic_client.messages.stream(
            model=model, max_tokens=512, tools=[WEATHER_TOOL], messages=messages
        ) as stream:
            second = stream.get_final_message()
    else:
        second = anthropic_client.messages.create(model=model, max_tokens=512, tools=[WEATHER_TOOL], messages=messages)

    assert single_text(second) == TOOL_RESULT_PREFIX + TOOL_OUTPUT
    assert second.stop_reason == "end_turn"
    assert not tool_uses(second)


def test_tool_history_is_translated_for_openai_backend(anthropic_client, model_for):
    """A tool_use / tool_result history reaches an OpenAI-compatible provider as `tool_calls` and a
    `tool` message (sdk_translated.rs inspects what the OpenAI mock received)."""
    messages = [
        *user("Weather in Paris?"),
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_01HistoryForOpenAI", "name": "get_weather", "input": EXPECTED_INPUT},
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_01HistoryForOpenAI", "content": TOOL_OUTPUT}],
        },
    ]
    message = anthropic_client.messages.create(
        model=model_for("openai"), max_tokens=256, tools=[WEATHER_TOOL], messages=messages
    )
    assert single_text(message) == REPLY["openai"]


@pytest.mark.parametrize("backend", TOOL_BACKENDS)
def test_parallel_tool_loop(anthropic_client, model_for, backend):
    """Two calls in one turn (streamed), both results — one an error given as blocks — in one
    user message. Gemini signs only the first of parallel calls."""
    model = model_for(backend)
    tools = [WEATHER_TOOL, TIME_TOOL]
    messages = user("parallel: weather and time in Paris")
    with anthropic_client.messages.stream(model=model, max_tokens=512, tools=tools, messages=messages) as stream:
        first = stream.get_final_message()
    calls = tool_uses(first)
    assert [c.name for c in calls] == ["get_weather", "get_time"], first.content
    assert [c.input for c in calls] == [EXPECTED_INPUT, {"tz": TOOL_STRING}]
    assert len({c.id for c in calls}) == 2
    assert first.stop_reason == "tool_use"

    results = [
        {"type": "tool_result", "tool_use_id": calls[0].id, "content": TOOL_OUTPUT},
        {
            "type": "tool_result",
            "tool_use_id": calls[1].id,
            "content": [{"type": "text", "text": "clock unavailable"}],
            "is_error": True,
        },
    ]
    messages = [*messages, {"role": "assistant", "content": first.content}, {"role": "user", "content": results}]
    second = anthropic_client.messages.create(model=model, max_tokens=512, tools=tools, messages=messages)
    assert single_text(second) == f"{TOOL_RESULT_PREFIX}{TOOL_OUTPUT}; clock unavailable"


@pytest.mark.parametrize("backend", TOOL_BACKENDS)
def test_tool_choice(anthropic_client, model_for, backend):
    model = model_for(backend)
    tools = [WEATHER_TOOL, TIME_TOOL]

    none = anthropic_client.messages.create(
        model=model, max_tokens=256, tools=tools, tool_choice={"type": "none"}, messages=user("Say hello please")
    )
    assert not tool_uses(none) and single_text(none) == REPLY[backend]
    assert none.stop_reason == "end_turn"

    named = anthropic_client.messages.create(
        model=model,
        max_tokens=256,
        tools=tools,
        tool_choice={"type": "tool", "name": "get_time"},
        messages=user("What time is it?"),
    )
    assert [(c.name, c.input) for c in tool_uses(named)] == [("get_time", {"tz": TOOL_STRING})]

    forced = anthropic_client.messages.create(
        model=model, max_tokens=256, tools=tools, tool_choice={"type": "any"}, messages=user("Anything")
    )
    assert [c.name for c in tool_uses(forced)] == ["get_weather"]
    assert forced.stop_reason == "tool_use"


@pytest.mark.parametrize("backend", BACKENDS)
def test_optional_parameters_are_translated(anthropic_client, model_for, backend):
    """System blocks with cache_control, top-level cache_control, metadata, stop sequences, sampling:
    every provider accepts what the gateway makes of them (the mocks reject unknown or misplaced
    fields like the real APIs)."""
    message = anthropic_client.messages.create(
        model=model_for(backend),
        max_tokens=256,
        system=[{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        messages=user("Say hello please"),
        metadata={"user_id": "user-42"},
        stop_sequences=["END"],
        cache_control={"type": "ephemeral"},
        # Sampling parameters are gone from SDK 2.x's signature but other clients still send them.
        extra_body={"temperature": 0.5, "top_k": 40},
    )
    assert single_text(message) == REPLY[backend]
    assert message.usage.input_tokens == token_count("You are terse.") + token_count("Say hello please")


# A 1×1 PNG.
PNG_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


@pytest.mark.parametrize("backend", BACKENDS)
def test_image_input(anthropic_client, model_for, backend):
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_BASE64}},
        {"type": "text", "text": "echo: a pixel"},
    ]
    message = anthropic_client.messages.create(
        model=model_for(backend), max_tokens=64, messages=[{"role": "user", "content": content}]
    )
    assert single_text(message) == "a pixel"


@pytest.mark.parametrize("backend", BACKENDS)
def test_multi_turn_history(anthropic_client, model_for, backend):
    messages = [
        *user("Say hello please"),
        {"role": "assistant", "content": "Hello there"},
        {"role": "user", "content": [{"type": "text", "text": "echo: again"}]},
    ]
    message = anthropic_client.messages.create(model=model_for(backend), max_tokens=256, messages=messages)
    assert single_text(message) == "again"
    assert message.usage.input_tokens == token_count("Say hello please") + token_count("Hello there") + token_count(
        "echo: again"
    )


# --- thinking --------------------------------------------------------------------------------


def _check_thinking(message, backend: str, expected_text: str):
    kinds = [block.type for block in message.content]
    assert kinds[0] == "thinking", kinds
    assert message.content[0].thinking == THOUGHT[backend]
    if backend == "anthropic":
        assert message.content[0].signature
    for text in texts(message):
        assert THOUGHT[backend] not in text and "Planning the reply" not in text, message.content
    assert single_text(message) == expected_text


@pytest.mark.parametrize("backend", THINKING_BACKENDS)
def test_thinking_blocks(anthropic_client, model_for, backend):
    message = anthropic_client.messages.create(
        model=model_for(backend), max_tokens=2048, thinking=THINKING, messages=user("Say hello please")
    )
    _check_thinking(message, backend, REPLY[backend])
    assert message.stop_reason == "end_turn"


@pytest.mark.parametrize("backend", THINKING_BACKENDS)
def test_thinking_blocks_streamed(anthropic_client, model_for, backend):
    thinking: list[str] = []
    text: list[str] = []
    with anthropic_client.messages.stream(
        model=model_for(backend), max_tokens=2048, thinking=THINKING, messages=user("Say hello please")
    ) as stream:
        for event in stream:
            if event.type == "thinking":
                thinking.append(event.thinking)
            elif event.type == "text":
                text.append(event.text)
        final = stream.get_final_message()

    assert "".join(thinking) == THOUGHT[backend]
    assert "".join(text) == REPLY[backend]
    _check_thinking(final, backend, REPLY[backend])


@pytest.mark.parametrize("backend", THINKING_BACKENDS)
def test_thinking_tool_loop(anthropic_client, model_for, backend):
    """Thinking + tools, then the whole assistant turn sent back as-is (thinking block included)."""
    model = model_for(backend)
    messages = user("Weather in Paris?")
    first = anthropic_client.messages.create(
        model=model, max_tokens=2048, thinking=THINKING, tools=[WEATHER_TOOL], messages=messages
    )
    assert first.content[0].type == "thinking", first.content
    call = _check_tool_call(first, backend)

    messages = [
        *messages,
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": TOOL_OUTPUT}]},
    ]
    second = anthropic_client.messages.create(
        model=model, max_tokens=2048, thinking=THINKING, tools=[WEATHER_TOOL], messages=messages
    )
    _check_thinking(second, backend, TOOL_RESULT_PREFIX + TOOL_OUTPUT)


# --- errors and authentication ---------------------------------------------------------------


def test_provider_rejection_is_relayed_as_bad_request(anthropic_client, model_for):
    """A tool name Anthropic allows but Gemini rejects (it must start with a letter): Gemini's 400
    reaches the caller as an Anthropic invalid_request_error, not a 5xx."""
    tool = {**WEATHER_TOOL, "name": "1st_weather"}
    with pytest.raises(anthropic.BadRequestError) as caught:
        anthropic_client.messages.create(
            model=model_for("gemini"), max_tokens=64, tools=[tool], messages=user("Weather in Paris?")
        )
    body = caught.value.body
    assert isinstance(body, dict) and body.get("type") == "error", body
    assert body["error"]["type"] == "invalid_request_error", body


def test_unknown_model_is_not_found(anthropic_client):
    with pytest.raises(anthropic.NotFoundError) as caught:
        anthropic_client.messages.create(model=UNKNOWN_MODEL, max_tokens=16, messages=user("hi"))
    assert caught.value.status_code == 404
    body = caught.value.body
    assert isinstance(body, dict) and body.get("type") == "error", body
    assert body["error"]["type"] == "not_found_error", body


def test_unknown_model_is_not_found_when_streaming(anthropic_client):
    with pytest.raises(anthropic.NotFoundError):
        with anthropic_client.messages.stream(model=UNKNOWN_MODEL, max_tokens=16, messages=user("hi")) as stream:
            stream.get_final_message()


@pytest.mark.parametrize("backend", TOOL_BACKENDS)  # the mocks with failure rules
def test_provider_rate_limit_is_rate_limit_error(anthropic_client, model_for, backend):
    with pytest.raises(anthropic.RateLimitError) as caught:
        anthropic_client.messages.create(model=model_for(backend), max_tokens=16, messages=user("fail: 429"))
    body = caught.value.body
    assert isinstance(body, dict) and body.get("type") == "error", body
    assert body["error"]["type"] == "rate_limit_error", body


@pytest.mark.parametrize("backend", TOOL_BACKENDS)
def test_provider_outage_is_server_error(anthropic_client, model_for, backend):
    with pytest.raises(anthropic.InternalServerError) as caught:
        anthropic_client.messages.create(model=model_for(backend), max_tokens=16, messages=user("fail: 503"))
    assert caught.value.status_code >= 500
    body = caught.value.body
    assert isinstance(body, dict) and body.get("type") == "error", body


@pytest.mark.parametrize("backend", TOOL_BACKENDS)
def test_midstream_failure_raises(anthropic_client, model_for, backend):
    """A provider failing after the first delta: the caller gets an `error` event, which the SDK
    raises (it silently skips one without an `event:` line)."""
    seen: list[str] = []
    with pytest.raises(anthropic.APIError):
        with anthropic_client.messages.stream(
            model=model_for(backend), max_tokens=256, messages=user("fail-stream: one two three four five six")
        ) as stream:
            for text in stream.text_stream:
                seen.append(text)
    assert "".join(seen), "the text before the failure was not delivered"


@pytest.mark.parametrize("style", ["bearer", "auth_token", "x-api-key"])
def test_bad_key_is_authentication_error(gateway_root, model_for, style):
    with make_anthropic_client(gateway_root, "sk-wrong-key", style=style) as client:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            client.messages.create(model=model_for("anthropic"), max_tokens=16, messages=user("hi"))
    assert caught.value.status_code == 401
    body = caught.value.body
    assert isinstance(body, dict) and body.get("type") == "error", body
    assert body["error"]["type"] == "authentication_error", body


@pytest.mark.parametrize("style", ["bearer", "auth_token", "x-api-key"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_credential_style_is_accepted(gateway_root, api_key, model_for, style, backend):
    with make_anthropic_client(gateway_root, api_key, style=style) as client:
        raw = client.messages.with_raw_response.create(model=model_for(backend), max_tokens=64, messages=user("hi"))
    sent = raw.http_request.headers
    if style == "x-api-key":
        assert sent.get("x-api-key") == api_key and "authorization" not in sent
    else:
        # SDK 2.x sends both api_key= and auth_token= as a Bearer token.
        assert sent.get("authorization") == f"Bearer {api_key}"
    assert sent.get("anthropic-version")
    assert single_text(raw.parse()) == REPLY[backend]


# --- the raw stream, checked against the spec ------------------------------------------------

DELTA_FOR_BLOCK = {
    "text": {"text_delta", "citations_delta"},
    "tool_use": {"input_json_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
    "redacted_thinking": set(),
}


def _parse_sse(raw: bytes) -> list[tuple[str | None, dict]]:
    """(event name, data) per event; fails on a data line that is not JSON."""
    events = []
    text = raw.decode("utf-8").replace("\r\n", "\n")
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        assert data, f"an event without data: {block!r}"
        events.append((name, json.loads("\n".join(data))))
    return events


def _check_stream_events(events: list[tuple[str | None, dict]]) -> dict:
    """Asserts the Messages streaming grammar; returns the assembled message."""
    for name, data in events:
        assert name is not None, f"event without an `event:` line (SDKs silently drop it): {data}"
        assert name == data["type"], (name, data)
    kinds = [data["type"] for _, data in events]
    assert kinds[0] == "message_start", kinds
    assert kinds[-1] == "message_stop", kinds
    assert kinds.count("message_start") == 1 and kinds.count("message_stop") == 1, kinds
    assert kinds.count("message_delta") == 1, kinds
    after_delta = kinds[kinds.index("message_delta") + 1 : -1]
    assert all(k == "ping" for k in after_delta), kinds

    message = events[0][1]["message"]
    assert message["content"] == [], message
    blocks: list[dict] = []
    open_index = None
    for _, data in events[1:-1]:
        kind = data["type"]
        if kind == "content_block_start":
            assert open_index is None, f"block {data['index']} started while {open_index} is open"
            assert data["index"] == len(blocks), f"non-contiguous index {data['index']} after {len(blocks)} blocks"
            open_index = data["index"]
            blocks.append({**data["content_block"], "_json": ""})
        elif kind == "content_block_delta":
            assert data["index"] == open_index, (data, open_index)
            block, delta = blocks[open_index], data["delta"]
            assert delta["type"] in DELTA_FOR_BLOCK[block["type"]], (block["type"], delta)
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "input_json_delta":
                block["_json"] += delta["partial_json"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
        elif kind == "content_block_stop":
            assert data["index"] == open_index, (data, open_index)
            open_index = None
        elif kind == "message_delta":
            assert open_index is None, "message_delta inside an open content block"
            assert data["delta"]["stop_reason"], data
            assert isinstance(data["usage"]["output_tokens"], int), data
            message["stop_reason"] = data["delta"]["stop_reason"]
            message["usage"] = {**message["usage"], **{k: v for k, v in data["usage"].items() if v is not None}}
        else:
            assert kind in ("ping", "error"), f"unexpected event {kind}"
            assert kind != "error", data
    for block in blocks:
        if block["type"] == "tool_use":
            block["input"] = json.loads(block["_json"] or "{}")
        del block["_json"]
    message["content"] = blocks
    return message


SCENARIOS = [
    ("openai", "text"),
    ("anthropic", "text"),
    ("gemini", "text"),
    ("anthropic", "tools"),
    ("gemini", "tools"),
    ("anthropic", "thinking"),
    ("gemini", "thinking"),
]


@pytest.mark.parametrize("backend,scenario", SCENARIOS)
def test_raw_stream_follows_the_spec(gateway_root, api_key, model_for, backend, scenario):
    """What the Vercel AI SDK sends (x-api-key, anthropic-version 2023-06-01), checked event by event."""
    body: dict = {"model": model_for(backend), "max_tokens": 2048, "stream": True, "messages": user(UNICODE_PROMPT)}
    if scenario == "tools":
        body["tools"] = [WEATHER_TOOL]
        body["messages"] = user("Weather in Paris?")
    if scenario == "thinking":
        body["thinking"] = THINKING
    headers = {"x-api-key": api_key, "anthropic-version": "2023-06-01", "content-type": "application/json"}
    with httpx2.Client(timeout=30.0) as client:
        with client.stream("POST", gateway_root + "/v1/messages", json=body, headers=headers) as resp:
            raw = resp.read()
            assert resp.status_code == 200, raw
            assert resp.headers["content-type"].startswith("text/event-stream"), resp.headers
    assert b"[DONE]" not in raw
    message = _check_stream_events(_parse_sse(raw))

    blocks = message["content"]
    if scenario == "text":
        assert [b["type"] for b in blocks] == ["text"]
        assert blocks[0]["text"] == reply_for(UNICODE_PROMPT)
        assert message["stop_reason"] == "end_turn"
    elif scenario == "tools":
        calls = [b for b in blocks if b["type"] == "tool_use"]
        assert len(calls) == 1 and calls[0]["name"] == "get_weather" and calls[0]["id"], blocks
        assert calls[0]["input"] == EXPECTED_INPUT
        assert message["stop_reason"] == "tool_use"
    else:
        assert blocks[0]["type"] == "thinking" and blocks[0]["thinking"] == THOUGHT[backend], blocks
        assert [b["type"] for b in blocks[1:]] == ["text"], blocks
        assert blocks[1]["text"] == reply_for(UNICODE_PROMPT)
    assert message["usage"]["input_tokens"] > 0 and message["usage"]["output_tokens"] > 0, message["usage"]

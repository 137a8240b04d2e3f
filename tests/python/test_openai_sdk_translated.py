"""The official `openai` Python SDK against Switchyard's `/v1/chat/completions` (and
`/v1/embeddings`) served by non-OpenAI providers: the Anthropic and Gemini mocks, so every request
and every response — streamed or not — is translated.

Run by tests/e2e/sdk_translated.rs (see conftest.py for the environment). Expected values come from
the mocks' deterministic rules (tests/e2e/support/mock_anthropic.rs, mock_gemini.rs): a fixed reply
per provider unless the last user text starts with "echo:", usage counts words, the first tool
(every tool after "parallel:") is called with string arguments "Paris, Île-de-France", tool results
are answered with "The tool said: <results>", and thinking produces a fixed thought.
"""

from __future__ import annotations

import json

import httpx2
import openai
import pytest

from _mock import MOCK_EMBED_DIMS, mock_embedding, pieces, reply_for, token_count

BACKENDS = ["anthropic", "gemini"]

REPLY = {"anthropic": "Hello from Anthropic mock", "gemini": "Hello from Gemini mock"}
THOUGHT = {
    "anthropic": "The user wants a short answer → reply briefly.",
    "gemini": "**Planning the reply**\nThe user wants a short answer → reply briefly.",
}
# The Anthropic mock says something before calling a tool; Gemini calls it straight away.
TOOL_PREAMBLE = {"anthropic": "Let me check that.", "gemini": None}
TOOL_RESULT_PREFIX = "The tool said: "
TOOL_STRING = "Paris, Île-de-France"  # every string argument the mocks make up
TOOL_OUTPUT = "18°C and sunny"
UNICODE_PROMPT = 'echo: Grüße, 世界 🚀 "quoted" \\ back\nslash'

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": ["string", "null"], "enum": ["celsius", "fahrenheit", None]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
        # Strict mode is OpenAI-only: the gateway must not forward it (Gemini rejects it).
        "strict": True,
    },
}
WEATHER_TOOL_LOOSE = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Local time in a timezone",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
    },
}
EXPECTED_ARGS = {"city": TOOL_STRING, "unit": TOOL_STRING}
EXPECTED_ARGS_LOOSE = {"city": TOOL_STRING}


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


# --- chat: non-streamed ----------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_chat_completion_content_and_usage(openai_gateway_client, model_for, backend):
    completion = openai_gateway_client.chat.completions.create(
        model=model_for(backend), messages=user("Say hello please")
    )

    assert completion.object == "chat.completion"
    assert completion.id
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content == REPLY[backend]
    assert choice.message.tool_calls in (None, [])
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == token_count("Say hello please")
    assert completion.usage.completion_tokens == len(pieces(REPLY[backend]))
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


@pytest.mark.parametrize("backend", BACKENDS)
def test_chat_completion_unicode_and_system(openai_gateway_client, model_for, backend):
    messages = [{"role": "system", "content": "You are terse."}, *user(UNICODE_PROMPT)]
    completion = openai_gateway_client.chat.completions.create(model=model_for(backend), messages=messages)

    assert completion.choices[0].message.content == reply_for(UNICODE_PROMPT)
    assert completion.usage.prompt_tokens == token_count("You are terse.") + token_count(UNICODE_PROMPT)


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_tokens_is_length(openai_gateway_client, model_for, backend):
    completion = openai_gateway_client.chat.completions.create(
        model=model_for(backend), messages=user("echo: one two three four"), max_completion_tokens=2
    )

    assert completion.choices[0].message.content == "one two "
    assert completion.choices[0].finish_reason == "length"


# --- chat: streamed --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_stream_helper_final_completion(openai_gateway_client, model_for, backend):
    deltas: list[str] = []
    with openai_gateway_client.chat.completions.stream(model=model_for(backend), messages=user(UNICODE_PROMPT)) as stream:
        for event in stream:
            if event.type == "content.delta":
                deltas.append(event.delta)
        final = stream.get_final_completion()

    expected = reply_for(UNICODE_PROMPT)
    choice = final.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "".join(deltas) == expected
    assert choice.finish_reason == "stop"


def _collect(chunks):
    content, finish_reasons, all_chunks = "", [], []
    for chunk in chunks:
        assert chunk.object == "chat.completion.chunk"
        all_chunks.append(chunk)
        for choice in chunk.choices:
            assert choice.index == 0
            content += choice.delta.content or ""
            finish_reasons.append(choice.finish_reason)
    assert len({chunk.id for chunk in all_chunks}) == 1, "every chunk of a stream has the same id"
    return content, [r for r in finish_reasons if r is not None], all_chunks


@pytest.mark.parametrize("backend", BACKENDS)
def test_raw_stream_without_usage(openai_gateway_client, model_for, backend):
    stream = openai_gateway_client.chat.completions.create(
        model=model_for(backend), messages=user("Say hello please"), stream=True
    )
    content, finish_reasons, chunks = _collect(stream)

    assert content == REPLY[backend]
    assert finish_reasons == ["stop"]
    assert all(chunk.usage is None for chunk in chunks), "usage appeared although it was not requested"
    assert all(chunk.choices for chunk in chunks), "a usage-only chunk (choices: []) leaked through"


@pytest.mark.parametrize("backend", BACKENDS)
def test_raw_stream_include_usage(openai_gateway_client, model_for, backend):
    stream = openai_gateway_client.chat.completions.create(
        model=model_for(backend),
        messages=user("Say hello please"),
        stream=True,
        stream_options={"include_usage": True},
    )
    content, finish_reasons, chunks = _collect(stream)

    assert content == REPLY[backend]
    assert finish_reasons == ["stop"]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens == token_count("Say hello please")
    assert last.usage.completion_tokens == len(pieces(REPLY[backend]))
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(chunk.usage is None for chunk in chunks[:-1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_stream_max_tokens_is_length(openai_gateway_client, model_for, backend):
    stream = openai_gateway_client.chat.completions.create(
        model=model_for(backend), messages=user("echo: one two three four"), max_tokens=2, stream=True
    )
    content, finish_reasons, _ = _collect(stream)

    assert content == "one two "
    assert finish_reasons == ["length"]


# --- tools -----------------------------------------------------------------------------------


def _check_tool_call(message, finish_reason, backend, expected_args=EXPECTED_ARGS):
    assert finish_reason == "tool_calls"
    assert message.tool_calls and len(message.tool_calls) == 1, message
    call = message.tool_calls[0]
    assert call.type == "function"
    assert call.id
    assert call.function.name == "get_weather"
    assert isinstance(call.function.arguments, str)
    assert json.loads(call.function.arguments) == expected_args
    assert message.content in (TOOL_PREAMBLE[backend], None, ""), message.content
    return call


@pytest.mark.parametrize("backend", BACKENDS)
def test_tool_calls(openai_gateway_client, model_for, backend):
    completion = openai_gateway_client.chat.completions.create(
        model=model_for(backend), messages=user("Weather in Paris?"), tools=[WEATHER_TOOL]
    )
    choice = completion.choices[0]
    _check_tool_call(choice.message, choice.finish_reason, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tool_calls_streamed_with_helper(openai_gateway_client, model_for, backend):
    done_arguments = []
    with openai_gateway_client.chat.completions.stream(
        model=model_for(backend), messages=user("Weather in Paris?"), tools=[WEATHER_TOOL]
    ) as stream:
        for event in stream:
            if event.type == "tool_calls.function.arguments.done":
                done_arguments.append(event.arguments)
        final = stream.get_final_completion()

    choice = final.choices[0]
    call = _check_tool_call(choice.message, choice.finish_reason, backend)
    assert done_arguments == [call.function.arguments]


@pytest.mark.parametrize("stream_second_turn", [False, True], ids=["create", "stream"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_tool_loop(openai_gateway_client, model_for, backend, stream_second_turn):
    """Call, tool result, answer — the assistant message appended exactly as the SDK returned it.
    Against Gemini this proves the function call's thought signature survives the round trip (the
    mock rejects the second turn without it)."""
    model = model_for(backend)
    messages: list = user("Weather in Paris?")
    first = openai_gateway_client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL_LOOSE])
    call = _check_tool_call(first.choices[0].message, first.choices[0].finish_reason, backend, EXPECTED_ARGS_LOOSE)

    messages += [first.choices[0].message, {"role": "tool", "tool_call_id": call.id, "content": TOOL_OUTPUT}]
    if stream_second_turn:
        with openai_gateway_client.chat.completions.stream(
            model=model, messages=messages, tools=[WEATHER_TOOL_LOOSE]
        ) as stream:
            second = stream.get_final_completion()
    else:
        second = openai_gateway_client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL_LOOSE])

    choice = second.choices[0]
    assert choice.message.content == TOOL_RESULT_PREFIX + TOOL_OUTPUT
    assert choice.finish_reason == "stop"
    assert not choice.message.tool_calls


@pytest.mark.parametrize("backend", BACKENDS)
def test_tool_loop_from_a_streamed_call(openai_gateway_client, model_for, backend):
    """The tool call id a streamed response carried (signature included, for Gemini) works too."""
    model = model_for(backend)
    messages: list = user("Weather in Paris?")
    with openai_gateway_client.chat.completions.stream(model=model, messages=messages, tools=[WEATHER_TOOL_LOOSE]) as stream:
        first = stream.get_final_completion()
    message = first.choices[0].message
    call = _check_tool_call(message, first.choices[0].finish_reason, backend, EXPECTED_ARGS_LOOSE)

    assistant = {
        "role": "assistant",
        "content": message.content,
        "tool_calls": [
            {"id": call.id, "type": "function", "function": {"name": call.function.name, "arguments": call.function.arguments}}
        ],
    }
    messages += [assistant, {"role": "tool", "tool_call_id": call.id, "content": TOOL_OUTPUT}]
    second = openai_gateway_client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL_LOOSE])
    assert second.choices[0].message.content == TOOL_RESULT_PREFIX + TOOL_OUTPUT


@pytest.mark.parametrize("stream_first_turn", [False, True], ids=["create", "stream"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_parallel_tool_loop(openai_gateway_client, model_for, backend, stream_first_turn):
    """Two calls in one turn, answered by two `tool` messages (which Anthropic needs in one user
    message, and Gemini as one turn with as many function responses as calls)."""
    model = model_for(backend)
    tools = [WEATHER_TOOL_LOOSE, TIME_TOOL]
    messages: list = user("parallel: weather and time in Paris")
    if stream_first_turn:
        with openai_gateway_client.chat.completions.stream(model=model, messages=messages, tools=tools) as stream:
            first = stream.get_final_completion()
    else:
        first = openai_gateway_client.chat.completions.create(model=model, messages=messages, tools=tools)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"], calls
    assert [json.loads(c.function.arguments) for c in calls] == [EXPECTED_ARGS_LOOSE, {"tz": TOOL_STRING}]
    assert len({c.id for c in calls}) == 2 and all(c.type == "function" for c in calls)

    messages += [
        choice.message,
        {"role": "tool", "tool_call_id": calls[0].id, "content": TOOL_OUTPUT},
        {"role": "tool", "tool_call_id": calls[1].id, "content": "12:00"},
    ]
    second = openai_gateway_client.chat.completions.create(model=model, messages=messages, tools=tools)
    assert second.choices[0].message.content == f"{TOOL_RESULT_PREFIX}{TOOL_OUTPUT}; 12:00"


@pytest.mark.parametrize("backend", BACKENDS)
def test_parallel_tool_calls_raw_stream_indexes(openai_gateway_client, model_for, backend):
    stream = openai_gateway_client.chat.completions.create(
        model=model_for(backend),
        messages=user("parallel: weather and time in Paris"),
        tools=[WEATHER_TOOL_LOOSE, TIME_TOOL],
        stream=True,
    )
    calls: dict[int, dict] = {}
    for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
                if delta.id:
                    assert call["id"] in (None, delta.id), "a tool call changed its id mid-stream"
                    call["id"] = delta.id
                if delta.function and delta.function.name:
                    call["name"] += delta.function.name
                if delta.function and delta.function.arguments:
                    call["arguments"] += delta.function.arguments
    assert sorted(calls) == [0, 1], calls
    assert [calls[i]["name"] for i in (0, 1)] == ["get_weather", "get_time"]
    assert all(calls[i]["id"] for i in (0, 1))
    assert json.loads(calls[1]["arguments"]) == {"tz": TOOL_STRING}


@pytest.mark.parametrize("backend", BACKENDS)
def test_tool_choice(openai_gateway_client, model_for, backend):
    model = model_for(backend)
    tools = [WEATHER_TOOL_LOOSE, TIME_TOOL]

    none = openai_gateway_client.chat.completions.create(
        model=model, messages=user("Say hello please"), tools=tools, tool_choice="none"
    )
    assert none.choices[0].message.content == REPLY[backend]
    assert not none.choices[0].message.tool_calls
    assert none.choices[0].finish_reason == "stop"

    required = openai_gateway_client.chat.completions.create(
        model=model, messages=user("Anything"), tools=tools, tool_choice="required"
    )
    assert [c.function.name for c in required.choices[0].message.tool_calls] == ["get_weather"]

    named = openai_gateway_client.chat.completions.create(
        model=model,
        messages=user("What time is it?"),
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert [c.function.name for c in named.choices[0].message.tool_calls] == ["get_time"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_assistant_content_with_tool_calls(openai_gateway_client, model_for, backend):
    """Many clients send `content: ""` (not null) on an assistant turn that only calls tools; the
    provider must not receive an empty text block."""
    model = model_for(backend)
    messages: list = user("Weather in Paris?")
    first = openai_gateway_client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL_LOOSE])
    call = first.choices[0].message.tool_calls[0]
    messages += [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": call.id, "type": "function", "function": {"name": call.function.name, "arguments": call.function.arguments}}
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": [{"type": "text", "text": TOOL_OUTPUT}]},
    ]
    second = openai_gateway_client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL_LOOSE])
    assert second.choices[0].message.content == TOOL_RESULT_PREFIX + TOOL_OUTPUT


# --- request parameters ----------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_openai_only_parameters_are_not_leaked(openai_gateway_client, model_for, backend):
    """Parameters only OpenAI knows must not reach providers that reject unknown fields."""
    completion = openai_gateway_client.chat.completions.create(
        model=model_for(backend),
        messages=user("Say hello please"),
        user="user-42",
        seed=7,
        presence_penalty=0.1,
        frequency_penalty=0.1,
        service_tier="default",
        stop="END",
        metadata={"purpose": "conformance"},
        store=False,
        temperature=0.5,
        n=1,
    )
    assert completion.choices[0].message.content == REPLY[backend]


@pytest.mark.parametrize("backend", BACKENDS)
def test_developer_and_system_roles(openai_gateway_client, model_for, backend):
    messages = [
        {"role": "developer", "content": "You are terse."},
        {"role": "system", "content": [{"type": "text", "text": "Be kind."}]},
        *user("Say hello please"),
    ]
    completion = openai_gateway_client.chat.completions.create(model=model_for(backend), messages=messages)
    assert completion.choices[0].message.content == REPLY[backend]
    assert completion.usage.prompt_tokens == (
        token_count("You are terse.") + token_count("Be kind.") + token_count("Say hello please")
    )


PNG_DATA_URL = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_image_data_url(openai_gateway_client, model_for, backend):
    content = [
        {"type": "text", "text": "echo: a pixel"},
        {"type": "image_url", "image_url": {"url": PNG_DATA_URL, "detail": "low"}},
    ]
    completion = openai_gateway_client.chat.completions.create(
        model=model_for(backend), messages=[{"role": "user", "content": content}]
    )
    assert completion.choices[0].message.content == "a pixel"


@pytest.mark.parametrize("backend", BACKENDS)
def test_multi_turn_history(openai_gateway_client, model_for, backend):
    messages = [*user("Say hello please"), {"role": "assistant", "content": "Hello there"}, *user("echo: again")]
    completion = openai_gateway_client.chat.completions.create(model=model_for(backend), messages=messages)
    assert completion.choices[0].message.content == "again"


@pytest.mark.parametrize("backend", BACKENDS)
def test_structured_output_request_is_accepted(openai_gateway_client, model_for, backend):
    """`response_format: json_schema` (strict, with `additionalProperties: false`, which Gemini's
    responseSchema rejects) reaches the provider in a form it accepts."""
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "score": {"type": ["number", "null"]}},
        "required": ["answer", "score"],
        "additionalProperties": False,
    }
    completion = openai_gateway_client.chat.completions.create(
        model=model_for(backend),
        messages=user('echo: {"answer": "yes", "score": null}'),
        response_format={"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema, "strict": True}},
    )
    assert json.loads(completion.choices[0].message.content) == {"answer": "yes", "score": None}


# --- the raw stream, checked chunk by chunk ---------------------------------------------------


def _raw_chat_stream(gateway_root: str, api_key: str, body: dict) -> tuple[str, list]:
    """(content-type, events): each event the JSON of a `data:` line, or the string "[DONE]"."""
    headers = {"authorization": f"Bearer {api_key}", "content-type": "application/json"}
    with httpx2.Client(timeout=30.0) as client:
        with client.stream("POST", gateway_root + "/v1/chat/completions", json=body, headers=headers) as resp:
            raw = resp.read()
            assert resp.status_code == 200, raw
            content_type = resp.headers["content-type"]
    events = []
    for block in raw.decode("utf-8").replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        lines = [line for line in block.split("\n") if not line.startswith(":")]
        assert all(line.startswith("data: ") for line in lines), f"unexpected SSE lines: {block!r}"
        data = "\n".join(line[len("data: ") :] for line in lines)
        events.append(data if data == "[DONE]" else json.loads(data))
    return content_type, events


def _check_chat_chunks(events: list, include_usage: bool) -> dict:
    """Asserts what strict clients (the Vercel AI SDK's schemas, the openai helpers) rely on;
    returns the assembled message."""
    assert events and events[-1] == "[DONE]" and events.count("[DONE]") == 1, events[-3:]
    chunks = events[:-1]
    assert len({c["id"] for c in chunks}) == 1, "one id per stream"
    for c in chunks:
        assert c["object"] == "chat.completion.chunk", c
        assert isinstance(c["created"], int) and isinstance(c["model"], str) and c["model"], c
        assert isinstance(c["choices"], list), c
        for choice in c["choices"]:
            assert choice["index"] == 0, c
            assert isinstance(choice["delta"], dict), c
            assert "finish_reason" in choice, c
    with_choices = [c for c in chunks if c["choices"]]
    assert with_choices[0]["choices"][0]["delta"].get("role") == "assistant", with_choices[0]
    finishes = [(i, c) for i, c in enumerate(chunks) if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finishes) == 1, "exactly one finish_reason"
    after = chunks[finishes[0][0] + 1 :]
    if include_usage:
        assert len(after) == 1 and after[0]["choices"] == [] and after[0]["usage"]["total_tokens"] > 0, after
    else:
        assert after == [], after
        assert all(c.get("usage") is None for c in chunks), "usage without include_usage"

    message = {"content": "", "reasoning": "", "tool_calls": {}, "finish_reason": finishes[0][1]["choices"][0]["finish_reason"]}
    for c in with_choices:
        delta = c["choices"][0]["delta"]
        message["content"] += delta.get("content") or ""
        message["reasoning"] += delta.get("reasoning_content") or ""
        for tc in delta.get("tool_calls") or []:
            assert isinstance(tc["index"], int), tc
            call = message["tool_calls"].get(tc["index"])
            if call is None:
                # The first delta of a call introduces it completely.
                assert tc.get("id") and tc.get("type") == "function" and tc["function"].get("name"), tc
                call = message["tool_calls"][tc["index"]] = {"id": tc["id"], "name": tc["function"]["name"], "arguments": ""}
            else:
                assert tc.get("id") in (None, call["id"]), "a call changed its id"
            call["arguments"] += (tc.get("function") or {}).get("arguments") or ""
    return message


RAW_SCENARIOS = [(b, s) for b in BACKENDS for s in ("text", "text+usage", "tools", "reasoning")]


@pytest.mark.parametrize("backend,scenario", RAW_SCENARIOS)
def test_raw_stream_is_well_formed(gateway_root, api_key, model_for, backend, scenario):
    body: dict = {"model": model_for(backend), "stream": True, "messages": user(UNICODE_PROMPT)}
    if scenario == "text+usage":
        body["stream_options"] = {"include_usage": True}
    if scenario == "tools":
        body["tools"] = [WEATHER_TOOL_LOOSE, TIME_TOOL]
        body["messages"] = user("parallel: weather and time")
    if scenario == "reasoning":
        body["reasoning_effort"] = "low"
    content_type, events = _raw_chat_stream(gateway_root, api_key, body)
    assert content_type.startswith("text/event-stream"), content_type
    message = _check_chat_chunks(events, include_usage=scenario == "text+usage")

    if scenario == "tools":
        assert message["finish_reason"] == "tool_calls"
        calls = message["tool_calls"]
        assert sorted(calls) == [0, 1], calls
        assert [calls[i]["name"] for i in (0, 1)] == ["get_weather", "get_time"]
        assert [json.loads(calls[i]["arguments"]) for i in (0, 1)] == [EXPECTED_ARGS_LOOSE, {"tz": TOOL_STRING}]
    else:
        assert message["finish_reason"] == "stop"
        assert message["content"] == reply_for(UNICODE_PROMPT)
        assert message["reasoning"] == (THOUGHT[backend] if scenario == "reasoning" else "")


# --- reasoning -------------------------------------------------------------------------------


def _extra(obj, name):
    return (obj.model_extra or {}).get(name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_reasoning_goes_to_reasoning_content(openai_gateway_client, model_for, backend):
    raw = openai_gateway_client.chat.completions.with_raw_response.create(
        model=model_for(backend), messages=user("Say hello please"), reasoning_effort="low"
    )
    wire = raw.http_response.json()["choices"][0]["message"]
    assert wire["content"] == REPLY[backend], wire
    assert wire.get("reasoning_content") == THOUGHT[backend], wire

    message = raw.parse().choices[0].message
    assert message.content == REPLY[backend]
    assert _extra(message, "reasoning_content") == THOUGHT[backend]
    assert "Planning the reply" not in message.content and "→" not in message.content


@pytest.mark.parametrize("backend", BACKENDS)
def test_reasoning_streamed_never_in_content(openai_gateway_client, model_for, backend):
    stream = openai_gateway_client.chat.completions.create(
        model=model_for(backend), messages=user("Say hello please"), reasoning_effort="low", stream=True
    )
    content, reasoning, order = "", "", []
    for chunk in stream:
        for choice in chunk.choices:
            piece = _extra(choice.delta, "reasoning_content")
            if piece:
                reasoning += piece
                order.append("reasoning")
            if choice.delta.content:
                content += choice.delta.content
                order.append("content")

    assert reasoning == THOUGHT[backend]
    assert content == REPLY[backend]
    assert order.index("content") > max(i for i, kind in enumerate(order) if kind == "reasoning"), order


@pytest.mark.parametrize("backend", BACKENDS)
def test_reasoning_tool_loop(openai_gateway_client, model_for, backend):
    """Anthropic requires the signed thinking block back on the turn that answers a tool call when
    thinking is on (Gemini: the call's thought signature); an OpenAI caller that appends the
    assistant message as returned (with the gateway's `thinking_blocks`) must get a normal second
    turn."""
    model = model_for(backend)
    messages: list = user("Weather in Paris?")
    first = openai_gateway_client.chat.completions.create(
        model=model, messages=messages, tools=[WEATHER_TOOL_LOOSE], reasoning_effort="low"
    )
    message = first.choices[0].message
    call = _check_tool_call(message, first.choices[0].finish_reason, backend, EXPECTED_ARGS_LOOSE)
    assert _extra(message, "reasoning_content") == THOUGHT[backend]

    messages += [message, {"role": "tool", "tool_call_id": call.id, "content": TOOL_OUTPUT}]
    second = openai_gateway_client.chat.completions.create(
        model=model, messages=messages, tools=[WEATHER_TOOL_LOOSE], reasoning_effort="low"
    )
    assert second.choices[0].message.content == TOOL_RESULT_PREFIX + TOOL_OUTPUT


# --- embeddings through Gemini -----------------------------------------------------------------

INPUTS = ["hello world", "Switchyard routes every model"]


def test_embeddings_through_gemini(openai_gateway_client, model_for):
    model = model_for("gemini")
    as_float = openai_gateway_client.embeddings.create(model=model, input=INPUTS, encoding_format="float")
    assert [item.index for item in as_float.data] == [0, 1]
    assert [item.embedding for item in as_float.data] == [mock_embedding(text, MOCK_EMBED_DIMS) for text in INPUTS]

    # The SDK's default asks for base64 and decodes it: the vectors must be identical.
    default = openai_gateway_client.embeddings.create(model=model, input=INPUTS)
    assert [item.embedding for item in default.data] == [item.embedding for item in as_float.data]

    short = openai_gateway_client.embeddings.create(model=model, input="short", dimensions=3, encoding_format="float")
    assert short.data[0].embedding == mock_embedding("short", 3)


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_provider_rate_limit_is_rate_limit_error(openai_gateway_client, model_for, backend):
    with pytest.raises(openai.RateLimitError) as caught:
        openai_gateway_client.chat.completions.create(model=model_for(backend), messages=user("fail: 429"))
    body = caught.value.body
    assert isinstance(body, dict) and isinstance(body.get("message"), str), body


@pytest.mark.parametrize("backend", BACKENDS)
def test_provider_outage_is_server_error(openai_gateway_client, model_for, backend):
    with pytest.raises(openai.InternalServerError) as caught:
        openai_gateway_client.chat.completions.create(model=model_for(backend), messages=user("fail: 503"))
    assert caught.value.status_code >= 500


@pytest.mark.parametrize("backend", BACKENDS)
def test_midstream_failure_raises(openai_gateway_client, model_for, backend):
    """A provider failing after the first delta: the caller's stream carries an error the SDK raises."""
    content = ""
    with pytest.raises(openai.APIError):
        stream = openai_gateway_client.chat.completions.create(
            model=model_for(backend), messages=user("fail-stream: one two three four five six"), stream=True
        )
        for chunk in stream:
            for choice in chunk.choices:
                content += choice.delta.content or ""
    assert content, "the text before the failure was not delivered"


@pytest.mark.parametrize("backend", BACKENDS)
def test_provider_rejection_is_a_client_error(openai_gateway_client, model_for, backend):
    """A tool result that answers no earlier call: the gateway (or the provider, whose 400 it
    relays) rejects it as a bad request, not a 5xx."""
    messages = [*user("hi"), {"role": "tool", "tool_call_id": "call_unknown", "content": "x"}]
    with pytest.raises(openai.BadRequestError) as caught:
        openai_gateway_client.chat.completions.create(model=model_for(backend), messages=messages)
    assert caught.value.status_code == 400

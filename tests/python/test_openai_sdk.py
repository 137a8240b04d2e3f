"""The official `openai` Python SDK against Switchyard (OpenAI dialect, OpenAI upstream mock).

Expected values come from the mock's deterministic rules (see _mock.py): a chat answers
"Hello from mock" unless the last user message starts with "echo:", usage counts words, and
embeddings are fixed functions of their input text.
"""

from __future__ import annotations

import array
import base64

import openai
import pytest

from _mock import MOCK_REPLY, mock_embedding, pieces, reply_for, token_count

UNKNOWN_MODEL = "no-such-model-xyz"


def qualified(model: str, provider: str = "openai") -> str:
    """The provider-qualified id the gateway lists for a model (``openai/gpt-4o-mini``)."""
    return model if "/" in model else f"{provider}/{model}"


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


# --- chat: non-streamed ----------------------------------------------------------------------


def test_chat_completion_content_and_usage(openai_client, chat_model):
    completion = openai_client.chat.completions.create(model=chat_model, messages=user("Say hello"))

    assert completion.object == "chat.completion"
    assert completion.id
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content == MOCK_REPLY
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == token_count("Say hello")
    assert completion.usage.completion_tokens == len(pieces(MOCK_REPLY))
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_chat_completion_round_trips_unicode(openai_client, chat_model):
    text = 'echo: Grüße, 世界 🚀 "quoted" \\ back\nslash'
    messages = [{"role": "system", "content": "You are terse."}, *user(text)]

    completion = openai_client.chat.completions.create(model=chat_model, messages=messages)

    assert completion.choices[0].message.content == reply_for(text)
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == token_count("You are terse.") + token_count(text)


# --- chat: streamed --------------------------------------------------------------------------


def test_stream_helper_final_completion(openai_client, chat_model):
    prompt = "echo: The quick brown fox jumps"
    deltas: list[str] = []
    with openai_client.chat.completions.stream(model=chat_model, messages=user(prompt)) as stream:
        for event in stream:
            if event.type == "content.delta":
                deltas.append(event.delta)
        final = stream.get_final_completion()

    # The role chunk carries `content: ""`, which the helper reports as an empty delta.
    assert [d for d in deltas if d] == pieces(reply_for(prompt))
    choice = final.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "".join(deltas) == "The quick brown fox jumps"
    assert choice.finish_reason == "stop"


def _collect(chunks) -> tuple[str, list[str | None], list]:
    content, finish_reasons, all_chunks = "", [], []
    for chunk in chunks:
        assert chunk.object == "chat.completion.chunk"
        all_chunks.append(chunk)
        for choice in chunk.choices:
            assert choice.index == 0
            content += choice.delta.content or ""
            finish_reasons.append(choice.finish_reason)
    return content, finish_reasons, all_chunks


def test_raw_stream_without_usage_shows_no_usage_chunk(openai_client, chat_model):
    stream = openai_client.chat.completions.create(model=chat_model, messages=user("Say hello"), stream=True)
    content, finish_reasons, chunks = _collect(stream)

    assert content == MOCK_REPLY
    assert [r for r in finish_reasons if r is not None] == ["stop"]
    assert all(chunk.usage is None for chunk in chunks), "usage appeared although it was not requested"
    assert all(chunk.choices for chunk in chunks), "a usage-only chunk (choices: []) leaked through"
    assert len({chunk.id for chunk in chunks}) == 1


def test_raw_stream_with_include_usage_ends_with_usage_chunk(openai_client, chat_model):
    stream = openai_client.chat.completions.create(
        model=chat_model,
        messages=user("Say hello please"),
        stream=True,
        stream_options={"include_usage": True},
    )
    content, finish_reasons, chunks = _collect(stream)

    assert content == MOCK_REPLY
    assert [r for r in finish_reasons if r is not None] == ["stop"]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens == token_count("Say hello please")
    assert last.usage.completion_tokens == len(pieces(MOCK_REPLY))
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(chunk.usage is None for chunk in chunks[:-1])


# --- embeddings --------------------------------------------------------------------------------

INPUTS = ["hello world", "Switchyard routes every model"]


def _assert_usage(response) -> None:
    expected = sum(token_count(text) for text in INPUTS)
    assert response.usage.prompt_tokens == expected
    assert response.usage.total_tokens == expected


def test_embeddings_float(openai_client, embed_model):
    response = openai_client.embeddings.create(model=embed_model, input=INPUTS, encoding_format="float")

    assert response.object == "list"
    assert [item.index for item in response.data] == [0, 1]
    assert [item.embedding for item in response.data] == [mock_embedding(text) for text in INPUTS]
    _assert_usage(response)


def test_embeddings_base64_default_is_decoded_by_the_sdk(openai_client, embed_model):
    # Without encoding_format the SDK asks for base64 on the wire and decodes it into floats.
    raw = openai_client.embeddings.with_raw_response.create(model=embed_model, input=INPUTS)
    wire = raw.http_response.json()
    assert all(isinstance(item["embedding"], str) for item in wire["data"]), wire

    response = raw.parse()
    assert [item.embedding for item in response.data] == [mock_embedding(text) for text in INPUTS]
    _assert_usage(response)


def test_embeddings_base64_explicit_matches_float(openai_client, embed_model):
    as_float = openai_client.embeddings.create(model=embed_model, input=INPUTS, encoding_format="float")
    as_base64 = openai_client.embeddings.create(model=embed_model, input=INPUTS, encoding_format="base64")

    decoded = []
    for item in as_base64.data:
        # An explicit format is returned untouched: a base64 string of little-endian f32s.
        assert isinstance(item.embedding, str)
        values = array.array("f", base64.b64decode(item.embedding))
        assert array.array("f", [0.0]).itemsize == 4
        decoded.append(values.tolist())
    assert decoded == [item.embedding for item in as_float.data]
    _assert_usage(as_base64)


def test_embeddings_dimensions(openai_client, embed_model):
    response = openai_client.embeddings.create(
        model=embed_model, input="short", dimensions=3, encoding_format="float"
    )
    assert response.data[0].embedding == mock_embedding("short", 3)


# --- models ----------------------------------------------------------------------------------


def test_models_list_has_provider_qualified_ids(openai_client, chat_model, embed_model):
    models = list(openai_client.models.list())
    ids = {model.id for model in models}

    assert qualified(chat_model) in ids, ids
    assert qualified(embed_model) in ids, ids
    assert all(model.object == "model" for model in models)


# --- errors ----------------------------------------------------------------------------------


def test_unknown_model_is_not_found(openai_client):
    with pytest.raises(openai.NotFoundError) as caught:
        openai_client.chat.completions.create(model=UNKNOWN_MODEL, messages=user("hi"))
    assert caught.value.status_code == 404
    assert caught.value.code == "model_not_found"


def test_unknown_model_is_not_found_when_streaming(openai_client):
    with pytest.raises(openai.NotFoundError) as caught:
        stream = openai_client.chat.completions.create(model=UNKNOWN_MODEL, messages=user("hi"), stream=True)
        for _ in stream:
            pass
    assert caught.value.code == "model_not_found"


def test_wrong_api_key_is_authentication_error(base_url, chat_model):
    with openai.OpenAI(base_url=base_url, api_key="sk-wrong-key", max_retries=0, timeout=30.0) as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            client.chat.completions.create(model=chat_model, messages=user("hi"))
        assert caught.value.status_code == 401
        with pytest.raises(openai.AuthenticationError):
            client.models.list()

"""Mirror of the mock upstream's deterministic rules (tests/e2e/support/mock.rs).

The gateway under test forwards to `MockUpstream::openai()`; these functions predict exactly
what that mock answers, so the SDK tests can assert values, not just shapes. Keep them in step
with the Rust functions of the same names.
"""

from __future__ import annotations

MOCK_REPLY = "Hello from mock"
"""Reply to a chat whose last user message does not start with ``echo:`` (``MOCK_REPLY``)."""

MOCK_EMBED_DIMS = 8
"""Embedding length when the request has no ``dimensions`` (``MOCK_EMBED_DIMS``)."""

_MASK64 = (1 << 64) - 1


def _fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & _MASK64
    return h


def mock_embedding(text: str, dims: int = MOCK_EMBED_DIMS) -> list[float]:
    """``mock_embedding``: values ``((h ^ (i * 0x9E3779B97F4A7C15)) % 2001 - 1000) / 1024``.

    ``h`` is the 64-bit FNV-1a hash of the text's UTF-8 bytes. Every value is exact in f32 and in
    decimal, so the float and base64 encodings must decode to identical numbers.
    """
    h = _fnv1a64(text.encode("utf-8"))
    return [((h ^ ((i * 0x9E3779B97F4A7C15) & _MASK64)) % 2001 - 1000) / 1024 for i in range(dims)]


def token_count(text: str) -> int:
    """``mock_token_count``: whitespace-separated words."""
    return len(text.split())


def reply_for(last_user_text: str) -> str:
    """``mock_reply_for``: the text after ``echo:`` (one space dropped), else ``MOCK_REPLY``."""
    if last_user_text.startswith("echo:"):
        rest = last_user_text[len("echo:") :]
        return rest[1:] if rest.startswith(" ") else rest
    return MOCK_REPLY


def pieces(reply: str) -> list[str]:
    """``mock_pieces``: one stream delta per word, each keeping its trailing space."""
    out: list[str] = []
    start = 0
    for i, ch in enumerate(reply):
        if ch == " ":
            out.append(reply[start : i + 1])
            start = i + 1
    if start < len(reply):
        out.append(reply[start:])
    return out

"""Starts llama-cpp-python's OpenAI-compatible server on a socket bound to port 0.

Usage: python tests/python/llama_server.py MODEL.gguf ALIAS

Prints `llama ready on PORT` once the server accepts connections (the e2e test waits for that
line; nothing polls). llama_cpp.server's own CLI takes a fixed port only, which parallel tests
cannot share safely, so the socket is bound here and handed to uvicorn.
"""

from __future__ import annotations

import asyncio
import socket
import sys

import uvicorn
from llama_cpp.server.app import create_app
from llama_cpp.server.settings import ModelSettings, ServerSettings


async def main(model: str, alias: str) -> None:
    app = create_app(
        server_settings=ServerSettings(host="127.0.0.1", port=0),
        model_settings=[ModelSettings(model=model, model_alias=alias, n_ctx=2048, n_threads=2, verbose=False)],
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            return
        await asyncio.sleep(0.02)
    print(f"llama ready on {port}", flush=True)
    await task


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

"""A small real HTTP server (stdlib) that speaks the OpenAI chat and completions API, for the
openai backend's tests and the LLM judge's: what it answers is set on the server object (the
`api` fixture in conftest.py)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Api(BaseHTTPRequestHandler):
    """POST /v1/chat/completions and /v1/completions; what it does is set on the server object."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
        server = self.server
        try:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        except (ValueError, OSError):  # the client left mid-request (a job that failed drops its requests in flight)
            self.close_connection = True
            return
        with server.lock:
            server.calls.append((self.path, body))
            n = len(server.calls)
            server.in_flight += 1
            server.peak = max(server.peak, server.in_flight)
        try:
            time.sleep(server.delay(n))
            if n <= server.failures:
                self._send(500, {"error": {"message": f"overloaded ({n})", "type": "server_error"}})
            else:
                self._send(200, server.answer(self.path, body))
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass
        finally:
            with server.lock:
                server.in_flight -= 1

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


def answer(path: str, body: dict) -> dict:
    """A deterministic reply naming what was asked; it stops at the first stop string as servers do:
    the stop string left out of the text and named in `stop_reason` (vLLM's field)."""
    asked = (
        body["prompt"] if path.endswith("/completions") and "messages" not in body else body["messages"][-1]["content"]
    )
    text = f"seed={body.get('seed')} t={body['temperature']} <end_code> after"
    stop = next((s for s in body.get("stop", []) if s in text), None)
    if stop:
        text = text[: text.index(stop)]
    finish = "stop" if stop else ("length" if body["max_tokens"] <= 4 else "stop")
    usage = {"prompt_tokens": len(asked), "completion_tokens": len(text), "total_tokens": 0}  # "tokens": characters
    if path.endswith("/chat/completions"):
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        kind = "chat.completion"
    else:
        choice, kind = {"index": 0, "text": text, "finish_reason": finish}, "text_completion"
    return {
        "id": "x",
        "object": kind,
        "created": 0,
        "model": body["model"],
        "choices": [{**choice, "stop_reason": stop}],
        "usage": usage,
    }


def start() -> ThreadingHTTPServer:
    """A threaded server on 127.0.0.1: answers at once, no failures, unless a test says otherwise."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    server.lock, server.calls, server.in_flight, server.peak = threading.Lock(), [], 0, 0
    server.failures, server.delay, server.answer = 0, lambda n: 0.0, answer
    server.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server

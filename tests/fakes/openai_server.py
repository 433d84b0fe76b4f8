"""A local OpenAI-compatible server: POST /v1/chat/completions answers from a per-test script.

Point the real `openai` client at `FakeOpenAI.base_url`. Each request takes the next scripted `Reply`
(status, body, headers, a delay before answering); with the script empty, `default` answers (or a
500 when there is none). Every request body is kept in `requests`, so tests read the prompt exactly
as the client sent it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.local_server import LocalHttpServer


@dataclass
class Reply:
    """One scripted answer: HTTP `status`, JSON `body` (or raw bytes), extra headers, a delay first."""

    status: int = 200
    body: dict[str, Any] | bytes = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def completion(
    content: str | dict[str, Any] | None = None,
    *,
    refusal: str | None = None,
    finish_reason: str = "stop",
    model: str = "gpt-4o-mini-2024-07-18",
    prompt_tokens: int = 1200,
    completion_tokens: int = 80,
    cached_tokens: int = 1024,
) -> Reply:
    """A chat.completion body as OpenAI sends it; a dict `content` is JSON-encoded as the model would."""
    text = json.dumps(content) if isinstance(content, dict) else content
    body = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": refusal, "annotations": []},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }
    return Reply(200, body)


def error(status: int, message: str, *, kind: str = "server_error", **headers: str) -> Reply:
    """An OpenAI error body, e.g. error(429, "Rate limit reached", kind="rate_limit_exceeded")."""
    return Reply(status, {"error": {"message": message, "type": kind, "param": None, "code": kind}}, headers)


class FakeOpenAI(LocalHttpServer):
    """The chat completions endpoint on 127.0.0.1, answering from `script` in order."""

    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.default: Reply | None = None
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        super().__init__()

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def reply(self, *replies: Reply) -> None:
        """Queue `replies` for the next requests."""
        with self._lock:
            self.script.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self.script.clear()
            self.requests.clear()
            self.default = None

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self.requests)

    def last_messages(self) -> list[dict[str, str]]:
        with self._lock:
            return list(self.requests[-1]["messages"])

    def _next(self, path: str, body: dict[str, Any]) -> Reply:
        if path != "/v1/chat/completions":
            return error(404, f"unknown path {path}", kind="invalid_request_error")
        with self._lock:
            self.requests.append(body)
            if self.script:
                return self.script.pop(0)
            return self.default or error(500, "nothing scripted for this request")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"unparsable": raw.decode(errors="replace")}
                reply = fake._next(self.path, body)
                if reply.delay:
                    time.sleep(reply.delay)
                payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name.replace("_", "-"), value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout); that is the point of the delay

            def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
                pass

        return Handler

"""A scripted HTTP server on 127.0.0.1 that speaks like the Anthropic and OpenAI APIs.

Each test queues the answers it wants (status, headers, body, or a stream that breaks) and
points the official SDK at the server with `base_url`. Every request received is kept for
assertions. The server runs in a thread and is stopped by the fixture that started it.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.api_rules import refusal


@dataclass
class Answer:
    """One scripted answer.

    Attributes:
        status: HTTP status.
        body: JSON-able body, or raw bytes.
        headers: Extra response headers.
        events: SSE events (name, data) sent instead of a body.
        cut_after: Close the connection after this many events (a stream that breaks).
        drop: Close the connection without answering at all.
        delay_s: Wait before answering (for timeouts).
        short_body: Announce more bytes than are sent, then close (a body cut mid-transfer).
        stall_s: After the events, keep the connection open this long sending nothing (a stream
            that stalls), then close it.
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    events: list[tuple[str, Any]] | None = None
    cut_after: int | None = None
    drop: bool = False
    delay_s: float = 0.0
    short_body: bool = False
    stall_s: float = 0.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


class ProviderServer:
    """Serves queued `Answer`s in order; answers 500 with a clear body when the queue is empty."""

    def __init__(
        self,
        *,
        window_chars: int | None = None,
        responder: Callable[[str, dict[str, Any]], Answer] | None = None,
    ) -> None:
        """Args:
        window_chars: Refuse a Messages request whose messages hold more characters, as Claude
            refuses a prompt over its window (400 "prompt is too long"); no answer is used up.
        responder: Answers a request when no answer is queued (path, body) -> Answer; it is
            called from the server's threads, one per connection.
        """
        self.window_chars = window_chars
        self.responder = responder
        self.refused: list[str] = []  # why each request was refused
        self.answers: deque[Answer] = deque()
        self.received: list[Received] = []
        self.opened: list[Any] = []  # model objects a test made, closed by the fixture
        self.connections: set[tuple[str, int]] = set()  # the client address of every request
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                if len(raw) < length:  # the client hung up while sending: no request was made
                    self.close_connection = True
                    return
                body = json.loads(raw or b"{}")
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.received.append(Received(self.path, headers, body, time.monotonic()))
                server.connections.add(self.client_address)
                refused = server._enforce(self.path, body)
                if refused is not None:
                    server.refused.append(refused.body["error"]["message"])
                    server._send(self, refused)
                    return
                if server.answers:
                    answer = server.answers.popleft()
                elif server.responder is not None:
                    answer = server.responder(self.path, body)
                else:
                    answer = Answer(500, {"error": "no answer queued"})
                server._send(self, answer)

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def _enforce(self, path: str, body: Any) -> Answer | None:
        """What the real APIs refuse (`api_rules`), and a prompt over the window."""
        reason = refusal(path, body)
        if reason is not None:
            return _invalid(reason)
        if path != "/v1/messages" or self.window_chars is None:
            return None
        size = len(json.dumps(body.get("messages", [])))
        if size > self.window_chars:
            return _invalid(f"prompt is too long: {size // 4} tokens > {self.window_chars // 4} maximum")
        return None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def queue(self, *answers: Answer) -> None:
        self.answers.extend(answers)

    def start(self) -> ProviderServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _send(self, handler: BaseHTTPRequestHandler, answer: Answer) -> None:
        if answer.delay_s:
            time.sleep(answer.delay_s)
        if answer.drop:
            handler.close_connection = True
            handler.connection.close()
            return
        if answer.events is not None:
            self._send_events(handler, answer)
            return
        body = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
        handler.send_response(answer.status)
        handler.send_header("content-type", "application/json")
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.send_header("content-length", str(len(body) + (100 if answer.short_body else 0)))
        handler.end_headers()
        handler.wfile.write(body)
        handler.wfile.flush()
        if answer.short_body:
            handler.close_connection = True
            handler.connection.close()

    def _send_events(self, handler: BaseHTTPRequestHandler, answer: Answer) -> None:
        handler.send_response(answer.status)
        handler.send_header("content-type", "text/event-stream")
        handler.send_header("connection", "close")
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        assert answer.events is not None
        for i, (event, data) in enumerate(answer.events):
            if answer.cut_after is not None and i >= answer.cut_after:
                break
            prefix = f"event: {event}\n" if event else ""
            handler.wfile.write(
                f"{prefix}data: {json.dumps(data) if not isinstance(data, str) else data}\n\n".encode()
            )
            handler.wfile.flush()
        if answer.stall_s:
            time.sleep(answer.stall_s)
        handler.close_connection = True


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (a timeout, a test that dropped it) is not the server's error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def anthropic_message(
    text: str = "ok", *, stop: str = "end_turn", tool: tuple[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A Messages API body in the shape of the real recordings."""
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    if tool is not None:
        content.append({"type": "tool_use", "id": "toolu_1", "name": tool[0], "input": tool[1]})
    return {
        "id": "msg_local",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }


def openai_completion(text: str = "ok", *, finish: str = "stop") -> dict[str, Any]:
    """A Chat Completions body in the shape of the real recordings."""
    return {
        "id": "chatcmpl-local",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def anthropic_tool_stream(partial_json: list[str], *, stop: str) -> list[tuple[str, Any]]:
    """SSE events of a streamed tool call whose arguments arrive in `partial_json` pieces."""
    events: list[tuple[str, Any]] = [
        (
            "message_start",
            {"type": "message_start", "message": {**anthropic_message(""), "stop_reason": None}},
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "tool_use", "id": "toolu_9", "name": "lookup", "input": {}},
            },
        ),
    ]
    for piece in partial_json:
        events.append(
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": piece},
                },
            )
        )
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 7},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events


def _invalid(message: str) -> Answer:
    return Answer(400, {"type": "error", "error": {"type": "invalid_request_error", "message": message}})


def everything_shown(error: BaseException) -> str:
    """All a user may see of an error: its traceback (causes included) and every field."""
    return "".join(traceback.format_exception(error)) + repr(error.__dict__)

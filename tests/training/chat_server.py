"""A chat-completions server on 127.0.0.1 for tests: answers from a script, counts requests."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = Callable[[dict[str, Any], int], tuple[int, str]]


class ChatServer:
    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                    n = len(server.requests)
                if self.path != "/v1/chat/completions":
                    status, content = 404, "not found"
                else:
                    status, content = server.reply(body, n)
                payload = (
                    json.dumps(
                        {
                            "choices": [{"message": {"role": "assistant", "content": content}}],
                            "usage": {"prompt_tokens": 11, "completion_tokens": 7},
                        }
                    )
                    if status == 200
                    else json.dumps({"error": {"message": content}})
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> ChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def scripted_reply(body: dict[str, Any], n: int) -> tuple[int, str]:
    """Questions for a questions prompt, an outline for an outline prompt."""
    last = body["messages"][-1]["content"]
    if "clarification questions" in last:
        return (
            200,
            "Sure! Here are my questions:\n1. What is your budget?\n2. When is the deadline?\n3. Who is the audience?",
        )
    return 200, "## Outline\n- Budget: $5,000\n- Deadline: March 3"

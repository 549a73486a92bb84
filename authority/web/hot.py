"""The hot path: the commonest requests answered from memory, ahead of the middleware chain.

Every agency call starts with a client-credentials token request, and most are
alike. Once the client and the signing key are held in memory, such a request
costs less than the layers it would cross: three middlewares each wrapping
``send``, FastAPI's exception and exit-stack layers, route matching, and the
request and response objects. :class:`HotPathMiddleware`, the outermost of our
middlewares, hands a request for one of its routes to that route's handler
with the body already read. The handler answers from memory, or returns
``None`` and the request goes on, body replayed, through the whole stack as if
the hot path did not exist.

An answer given here carries what the stack would have added (the request id,
:func:`~authority.web.middleware.security_headers`) and is counted and logged
the same way; tests/unit/web/test_hot.py compares the two byte for byte.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authority.logs import request_id_var
from authority.web.metrics import Metrics
from authority.web.middleware import incoming_request_id, record_request
from authority.web.problems import PROBLEM_JSON, internal_error

error_log = logging.getLogger("authority.web")

#: The largest body the hot path reads (a plain token request is about 100 bytes);
#: a longer one goes to the stack, replayed, and meets its body limit there.
HOT_BODY_LIMIT = 16 * 1024

#: A handler's answer: status, headers (lower-case names, as ASGI) and body.
HotReply = tuple[int, list[tuple[bytes, bytes]], bytes]
#: Answers a request from its scope and whole body, or gives ``None`` to pass it on.
HotHandler = Callable[[Scope, bytes], HotReply | None]


@dataclass(frozen=True)
class HotRoute:
    """A method and exact path answered by ``handler`` when it can."""

    method: str
    path: str
    handler: HotHandler


class HotPathMiddleware:
    """Answers requests for its routes from memory when their handlers can; passes
    everything else, and what they decline, to ``app`` unchanged. A body longer
    than ``limit`` is not read whole here: it goes to ``app`` too."""

    def __init__(
        self,
        app: ASGIApp,
        routes: Sequence[HotRoute],
        *,
        metrics: Metrics,
        issuer: str,
        limit: int,
        headers: Iterable[tuple[str, str]],
    ) -> None:
        self.app = app
        self.routes = {(route.method, route.path): route.handler for route in routes}
        self.metrics = metrics
        self.issuer = issuer
        self.limit = limit
        self.headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Try the route's handler; otherwise the whole stack answers."""
        handler = (
            self.routes.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        )
        if handler is None or scope.get("query_string"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        received: list[Message] = []
        body = await self._read(scope, receive, received)
        reply = None if body is None else self._answer(handler, scope, body)
        if reply is None:  # declined, too large, or the client left: the stack answers
            await self.app(scope, _replay(received, receive), send)
            return
        request_id, (status, headers, content) = reply
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-length", str(len(content)).encode("latin-1")),
                    *headers,
                    (b"x-request-id", request_id.encode("latin-1")),
                    *self.headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})
        record_request(self.metrics, scope, scope["path"], status, time.perf_counter() - started)

    def _answer(
        self, handler: HotHandler, scope: Scope, body: bytes
    ) -> tuple[str, HotReply] | None:
        """The request id and the handler's reply (a 500 problem if it failed), or None."""
        request_id = incoming_request_id(scope)
        token = request_id_var.set(request_id)
        try:
            reply = handler(scope, body)
        except Exception:
            error_log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            content = internal_error(self.issuer, scope["path"]).body
            reply = (500, [(b"content-type", PROBLEM_JSON.encode("latin-1"))], bytes(content))
        finally:
            request_id_var.reset(token)
        return None if reply is None else (request_id, reply)

    async def _read(self, scope: Scope, receive: Receive, received: list[Message]) -> bytes | None:
        """The whole body, or None when it exceeds the limit or the client disconnected."""
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                return None
        size = 0
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                return None
            size += len(message.get("body", b""))
            if size > self.limit:
                return None
            if not message.get("more_body", False):
                break
        if len(received) == 1:
            return bytes(received[0].get("body", b""))
        return b"".join(message.get("body", b"") for message in received)


def _replay(received: list[Message], receive: Receive) -> Receive:
    """A receive that gives back what was already read, then reads on."""
    pending = list(received)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay

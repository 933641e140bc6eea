"""Admission control: a slow or greedy client cannot take the service from the others.

BentoML has one pool of in-flight slots per worker, held from the first byte of a request to its
last, so 64 clients sending half a body, or 64 long diffusion requests, made every endpoint answer
429 (measured in the starvation load test). ZooServe's gateway replaces it with
- a request body read in full, under a deadline (408), before the request takes a slot
  (a stalled upload holds no slot);
- separate slots per endpoint class: generation (a diffusion request holds its slot for seconds)
  cannot exhaust the slots of the fast endpoints, and beyond its limit a class answers 429 at once;
- generation work cancelled when its caller has gone: ``unless_gone`` in the API worker's
  gateway, ``CancelWhenGone`` in the Generators worker, whose sampler then stops between
  denoising steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.errors import ServiceError

logger = logging.getLogger("bentoml.zooserve")


class Slots:
    """At most ``limits[class]`` requests of a class in flight in this worker; beyond, 429 at once."""

    def __init__(self, limits: dict[str, int]) -> None:
        self.limits = limits
        self.in_flight = {name: 0 for name in limits}

    def take(self, kind: str | None) -> str | None:
        """A slot of the route's class (None: a route that needs none); ``release`` gives it back."""
        if kind is None:
            return None
        if self.in_flight[kind] >= self.limits[kind]:
            raise ServiceError(f"too many {kind} requests in flight ({self.limits[kind]}); retry shortly",
                               status=429, headers={"Retry-After": "1"})
        self.in_flight[kind] += 1
        return kind

    def release(self, kind: str | None) -> None:
        if kind is not None:
            self.in_flight[kind] -= 1


class CancelWhenGone:
    """Cancels a request's work when its client disconnects before the answer.

    Starlette and BentoML go on computing for a client that has gone; for generation that is
    seconds to minutes of the one Generators worker. Once the body has been read, this listens
    for ``http.disconnect`` and cancels the handler; an async handler awaiting the Generators
    worker then closes that connection, and the Generators worker's own ``CancelWhenGone`` stops
    the sampler (``applies`` picks the paths worth a listener: it is one more task per request).
    """

    def __init__(self, app: ASGIApp, applies: Callable[[str], bool] = lambda _path: True) -> None:
        self.app = app
        self.applies = applies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.applies(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        body_read = asyncio.Event()

        async def tracking_receive() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                body_read.set()
            return message

        async def after_body() -> Message:
            await body_read.wait()
            return await receive()

        await unless_gone(self.app(scope, tracking_receive, send), after_body, scope)


async def unless_gone(work: Awaitable[None], receive: Receive, scope: Scope) -> None:
    """Run ``work``; if the client disconnects first (``receive`` gives ``http.disconnect``),
    cancel it and return. ``receive`` must be past the request's body."""

    async def until_gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(until_gone())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        watcher.cancel()
        raise
    watcher.cancel()
    if not task.done():
        task.cancel()
        logger.info("%s %s: client gone, its work is cancelled", scope.get("method"), scope.get("path"))
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return
    await task

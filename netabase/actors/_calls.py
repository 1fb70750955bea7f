"""Sending a request to an actor and waiting for its answer, within a deadline."""

from __future__ import annotations

from typing import Any

import trio

from .._errors import Overloaded, RequestTimeout
from ._deadlines import Deadlines
from ._mailbox import Mailbox, Request
from ._messages import Message


async def call(
    mailbox: Mailbox,
    deadlines: Deadlines,
    name: str,
    message: Message,
    key: object,
    seconds: float,
    block: bool,
) -> Any:
    """Queue ``message`` for the actor behind ``mailbox`` and return its answer.

    A full mailbox makes the caller wait (``block``) or raise `Overloaded`; past ``seconds``
    seconds the caller gets `RequestTimeout`, and a request no actor has started is skipped.
    """
    request = Request(message, key)
    now = trio.current_time()
    deadline = now + seconds
    try:
        mailbox.put_nowait(request, now)
    except trio.WouldBlock:
        if not block:
            raise Overloaded(name, mailbox.capacity) from None
        with trio.move_on_at(deadline) as waited:
            await mailbox.put(request)
        if waited.cancelled_caught:
            raise RequestTimeout(name, message.operation, seconds, key) from None
    deadlines.add(request, deadline, seconds, name)
    return await request.wait()

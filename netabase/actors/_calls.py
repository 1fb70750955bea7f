"""`send`: the one way to hand an actor a message and wait for its answer, within a deadline."""

from __future__ import annotations

from typing import Any

import trio

from .._errors import Overloaded, RequestTimeout
from ._deadlines import Deadlines
from ._mailbox import Mailbox, Request
from ._messages import Message


async def send(
    mailbox: Mailbox,
    message: Message,
    *,
    deadlines: Deadlines,
    seconds: float,
    block: bool = True,
    key: object = None,
) -> Any:
    """Queue ``message`` for the actor behind ``mailbox`` and return its answer.

    A full mailbox makes the caller wait (``block``) or raise `Overloaded`; past ``seconds``
    seconds the caller gets `RequestTimeout` (naming ``key``, the caller's own key, if given),
    and a request no actor has started is skipped.
    """
    request = Request(message, key)
    now = trio.current_time()
    deadline = now + seconds
    try:
        mailbox.put_nowait(request, now)
    except trio.WouldBlock:
        if not block:
            raise Overloaded(mailbox.name, mailbox.capacity) from None
        with trio.move_on_at(deadline) as waited:
            await mailbox.put(request)
        if waited.cancelled_caught:
            raise RequestTimeout(mailbox.name, message.operation, seconds, key) from None
    deadlines.add(request, deadline, seconds, mailbox.name)
    return await request.wait()

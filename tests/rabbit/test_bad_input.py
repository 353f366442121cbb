"""The RabbitMQ adapter's options, given a wrong type, and aio-pika's message given in place of
FastStream's: each is refused at once, saying what to pass."""

from __future__ import annotations

from aio_pika import Message

import msgdel
from msgdel import AdapterNotFound
from msgdel.adapters.rabbit import RabbitAdapter
from tests.bad_input import Refused, check, rows


@rows(
    Refused(
        "dead-letter-a-string",
        lambda: RabbitAdapter(dead_letter="no"),
        TypeError,
        ("True or False",),
    ),
    Refused(
        "the-aio-pika-message",
        lambda: msgdel.delete(Message(b"order 1")),
        AdapterNotFound,
        ("broker client's own message", "msg: RabbitMessage"),
    ),
)
async def test_a_wrong_argument_is_refused_saying_what_to_pass(row: Refused) -> None:
    await check(row)

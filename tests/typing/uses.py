"""What the types of msgdel's public calls accept, checked by mypy (the lint env), not run.

A line ending in ``# type: ignore[...]`` must be an error: mypy runs with
``--warn-unused-ignores``, so a use that stops being refused fails the check. Every other line
must type-check under ``--strict``. A body typed with ``Any`` inside (``dict[str, Any]``)
matches every overload, so mypy cannot refuse it; precisely typed bodies are refused.
"""

from __future__ import annotations

from typing import Any

from faststream.kafka.annotations import KafkaMessage
from faststream.nats.annotations import NatsMessage
from faststream.redis.annotations import RedisStreamMessage

import msgdel
from msgdel import DeleteResult, MsgdelError
from msgdel.address import KafkaOffset, RedisEntry


class Note:
    """A message class of the user's own, with an adapter of its own."""


async def accepted(redis: RedisStreamMessage, nats: NatsMessage, kafka: KafkaMessage) -> None:
    result: DeleteResult = await msgdel.delete(redis)
    result = await msgdel.delete(Note())
    results: list[DeleteResult] = await msgdel.delete_many([redis, redis])
    results = await msgdel.delete_many([nats, kafka])
    results = await msgdel.delete_many(Note() for _ in range(3))
    outcomes: list[DeleteResult | MsgdelError] = await msgdel.delete_many(
        [Note()], return_exceptions=True
    )
    anything: Any = object()
    result = await msgdel.delete(anything)
    results = await msgdel.delete_many([anything])
    print(result, results, outcomes)


async def by_address() -> None:
    results: list[DeleteResult] = await msgdel.delete_at(
        "redis://localhost", [RedisEntry("orders", "1-0"), RedisEntry("orders", "2-0")]
    )
    outcomes: list[DeleteResult | MsgdelError] = await msgdel.delete_at(
        "kafka://localhost:9092", [KafkaOffset("orders", 0, 41)], return_exceptions=True
    )
    print(results, outcomes)


async def text_is_not_an_address() -> None:
    await msgdel.delete_at("redis://localhost", ["orders:1-0"])  # type: ignore[list-item]


# Each refused use is alone in its function: a call typed NoReturn makes what follows unreachable.


async def refused_bytes(body: bytes) -> None:
    await msgdel.delete(body)  # type: ignore[deprecated]


async def refused_text(text: str) -> None:
    await msgdel.delete(text)  # type: ignore[deprecated]


async def refused_decoded_json(decoded: dict[str, str]) -> None:
    await msgdel.delete(decoded)  # type: ignore[deprecated]


async def refused_none() -> None:
    await msgdel.delete(None)  # type: ignore[deprecated]


async def refused_bodies(body: bytes) -> None:
    await msgdel.delete_many([body, body])  # type: ignore[deprecated]


async def refused_bodies_returning_exceptions(decoded: dict[str, str]) -> None:
    await msgdel.delete_many([decoded], return_exceptions=True)  # type: ignore[deprecated]


async def refused_require_as_text() -> None:
    await msgdel.delete(Note(), require="EXACT")  # type: ignore[call-overload]


async def refused_return_exceptions_as_text() -> None:
    await msgdel.delete_many([Note()], return_exceptions="yes")  # type: ignore[call-overload]

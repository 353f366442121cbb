"""The Redis adapter's options, given a wrong type, and redis-py's reply given in place of
FastStream's message: each is refused at once, saying what to pass."""

from __future__ import annotations

from redis.asyncio import Redis

import msgdel
from msgdel import AdapterNotFound
from msgdel.adapters.redis import RedisStreamAdapter
from tests.bad_input import Refused, check, rows


@rows(
    Refused(
        "ignore-other-groups-a-string",
        lambda: RedisStreamAdapter(ignore_other_groups="yes"),
        TypeError,
        ("True or False",),
    ),
    Refused(
        "match-fields-a-string",
        lambda: RedisStreamAdapter(match_fields="yes"),
        TypeError,
        ("True or False",),
    ),
    Refused(
        "the-redis-py-client",
        lambda: msgdel.delete(Redis()),
        AdapterNotFound,
        ("broker client's own message",),
    ),
)
async def test_a_wrong_argument_is_refused_saying_what_to_pass(row: Refused) -> None:
    await check(row)

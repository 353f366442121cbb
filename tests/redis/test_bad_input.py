"""The Redis adapter's options, given a wrong type, redis-py's reply given in place of
FastStream's message, and malformed Redis addresses: each is refused at once, saying what to
pass, before anything is sent."""

from __future__ import annotations

import redis
from redis.asyncio import Redis

import msgdel
from msgdel import AdapterNotFound, UnsupportedDeletion
from msgdel.adapters.redis import RedisStreamAdapter
from msgdel.address import RedisEntry
from tests.bad_input import Refused, check, rows

UNUSED = "redis://127.0.0.1:1"
"""No server: a call refused before anything is sent never connects to it."""


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
    Refused(
        "an-entry-id-without-its-sequence",
        lambda: RedisEntry("orders", "1700000000000"),
        ValueError,
        ("RedisEntry.entry_id", "'1700000000000'", "1700000000000-0"),
    ),
    Refused(
        "an-entry-id-as-a-number",
        lambda: RedisEntry("orders", 1700000000000),
        TypeError,
        ("RedisEntry.entry_id", "must be a str"),
    ),
    Refused("an-empty-stream-key", lambda: RedisEntry("", "1-0"), ValueError, ("not empty",)),
    Refused(
        "an-empty-group",
        lambda: RedisEntry("orders", "1-0", group=""),
        ValueError,
        ("consumer group name or None",),
    ),
    Refused(
        "an-address-without-its-entry-id",
        lambda: RedisEntry.parse("orders"),
        ValueError,
        ("'orders'", "STREAM:1700000000000-0"),
    ),
    Refused(
        "an-entry-id-past-64-bits",
        lambda: msgdel.delete_at(
            Redis.from_url(UNUSED), [RedisEntry("s", "18446744073709551616-0")]
        ),
        ValueError,
        ("'18446744073709551616-0'", "two 64-bit numbers"),
    ),
    Refused(
        "an-entry-id-of-thousands-of-digits",
        lambda: msgdel.delete_at(Redis.from_url(UNUSED), [RedisEntry("s", "9" * 5000 + "-0")]),
        ValueError,
        ("stream entry id such as",),
    ),
    Refused(
        "an-entry-id-of-non-ascii-digits",
        lambda: msgdel.delete_at(Redis.from_url(UNUSED), [RedisEntry("s", "\u0661-\u0660")]),
        ValueError,
        ("stream entry id such as",),
    ),
    Refused(
        "a-synchronous-redis-py-client",
        lambda: msgdel.delete_at(redis.Redis.from_url(UNUSED), [RedisEntry("s", "1-0")]),
        UnsupportedDeletion,
        ("redis.asyncio.Redis", "redis.client.Redis", "nothing was sent"),
    ),
    Refused(
        "match-fields-for-an-address",
        lambda: msgdel.delete_at(
            Redis.from_url(UNUSED),
            [RedisEntry("s", "1-0")],
            adapter=RedisStreamAdapter(match_fields=True),
        ),
        UnsupportedDeletion,
        ("match_fields=True", "does not delete by address", "nothing was sent"),
    ),
    Refused(
        "a-url-of-another-broker-with-a-password",
        lambda: msgdel.delete_at("nats://app:s3cret@127.0.0.1:1", [RedisEntry("s", "1-0")]),
        ValueError,
        ("redis://", "nothing was sent"),
        secret="s3cret",
    ),
)
async def test_a_wrong_argument_is_refused_saying_what_to_pass(row: Refused) -> None:
    await check(row)

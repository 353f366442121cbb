"""The NATS adapters' options, given a wrong type or value, the nats-py message given in place
of FastStream's, and malformed NATS addresses: each is refused at once, saying what to pass."""

from __future__ import annotations

import math

from nats.aio.client import Client
from nats.aio.msg import Msg

import msgdel
from msgdel import AdapterNotFound, UnsupportedDeletion
from msgdel.adapters.nats import JetStreamAdapter, KeyValueAdapter, ObjectStoreAdapter
from msgdel.address import JetStreamSequence, KvKey
from tests.bad_input import Refused, check, rows

SECRET = "hunter2-nats"


@rows(
    Refused("erase-a-string", lambda: JetStreamAdapter(erase="yes"), TypeError, ("erase", "True")),
    Refused(
        "ignore-other-consumers-a-number",
        lambda: JetStreamAdapter(ignore_other_consumers=1),
        TypeError,
        ("True or False",),
    ),
    Refused("concurrency-zero", lambda: JetStreamAdapter(concurrency=0), ValueError, (">= 1",)),
    Refused(
        "concurrency-a-float", lambda: JetStreamAdapter(concurrency=2.5), ValueError, ("integer",)
    ),
    Refused("timeout-negative", lambda: JetStreamAdapter(timeout=-1), ValueError, ("> 0",)),
    Refused("timeout-nan", lambda: JetStreamAdapter(timeout=math.nan), ValueError, ("finite",)),
    Refused("api-prefix-a-number", lambda: JetStreamAdapter(api_prefix=3), TypeError, ("$JS.API",)),
    Refused("kv-purge-a-string", lambda: KeyValueAdapter(purge="yes"), TypeError, ("purge",)),
    Refused(
        "kv-concurrency-negative", lambda: KeyValueAdapter(concurrency=-1), ValueError, (">= 1",)
    ),
    Refused(
        "object-store-concurrency-zero",
        lambda: ObjectStoreAdapter(concurrency=0),
        ValueError,
        (">= 1",),
    ),
    Refused(
        "the-nats-py-message",
        lambda: msgdel.delete(Msg(None, subject="orders", data=b"1")),  # type: ignore[arg-type]
        AdapterNotFound,
        ("broker client's own message", "msg: NatsMessage"),
    ),
    Refused(
        "sequence-zero", lambda: JetStreamSequence("orders", 0), ValueError, ("sequence", ">= 1")
    ),
    Refused(
        "sequence-a-string",
        lambda: JetStreamSequence("orders", "7"),  # type: ignore[arg-type]
        TypeError,
        ("an int",),
    ),
    Refused(
        "stream-with-a-dot",
        lambda: JetStreamSequence("orders.eu", 1),
        ValueError,
        ("JetStream stream name", "'orders.eu'"),
    ),
    Refused(
        "sequence-text-not-a-number",
        lambda: JetStreamSequence.parse("orders:seven"),
        ValueError,
        ("'seven' is not a number", "STREAM:SEQUENCE"),
    ),
    Refused("kv-key-with-a-space", lambda: KvKey("config", "a b"), ValueError, ("a KV key",)),
    Refused("kv-bucket-with-a-dot", lambda: KvKey("con.fig", "a"), ValueError, ("KV bucket",)),
    Refused("kv-key-text-without-a-bucket", lambda: KvKey.parse("a"), ValueError, ("BUCKET:KEY",)),
    Refused(
        "a-sequence-on-a-redis-url",
        lambda: msgdel.delete_at(
            f"redis://u:{SECRET}@127.0.0.1:1", [JetStreamSequence("orders", 1)]
        ),
        ValueError,
        ("nats://", "nothing was sent"),
        secret=SECRET,
    ),
    Refused(
        "a-client-of-another-library",
        lambda: msgdel.delete_at(object(), [KvKey("config", "a")]),
        UnsupportedDeletion,
        ("nats.aio.client.Client",),
    ),
    Refused(
        "a-kv-key-given-to-the-jetstream-adapter",
        lambda: msgdel.delete_at(Client(), [KvKey("config", "a")], adapter=JetStreamAdapter()),
        UnsupportedDeletion,
        ("JetStreamSequence", "KeyValueAdapter"),
    ),
)
async def test_a_wrong_argument_is_refused_saying_what_to_pass(row: Refused) -> None:
    await check(row)

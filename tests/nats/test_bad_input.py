"""The NATS adapters' options, given a wrong type or value, and the nats-py message given in place
of FastStream's: each is refused at once, saying what to pass."""

from __future__ import annotations

import math

from nats.aio.msg import Msg

import msgdel
from msgdel import AdapterNotFound
from msgdel.adapters.nats import JetStreamAdapter, KeyValueAdapter, ObjectStoreAdapter
from tests.bad_input import Refused, check, rows


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
)
async def test_a_wrong_argument_is_refused_saying_what_to_pass(row: Refused) -> None:
    await check(row)

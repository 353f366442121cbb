"""The aiokafka adapter's options, given a wrong type or value, and aiokafka's record given in
place of FastStream's message: each is refused at once, saying what to pass."""

from __future__ import annotations

import math

from aiokafka.structs import ConsumerRecord

import msgdel
from msgdel import AdapterNotFound
from msgdel.adapters.kafka import KafkaAdapter
from tests.bad_input import Refused, check, rows


def record() -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("orders", 0, 1, 0, 0, None, b"1", None, 1, 0, [])


@rows(
    Refused(
        "strategy-unknown",
        lambda: KafkaAdapter("delete"),
        ValueError,
        ("'truncate' or 'tombstone'",),
    ),
    Refused(
        "protect-groups-a-string",
        lambda: KafkaAdapter(protect_groups="no"),
        TypeError,
        ("True or False",),
    ),
    Refused("timeout-zero", lambda: KafkaAdapter(timeout=0), ValueError, ("> 0",)),
    Refused("timeout-nan", lambda: KafkaAdapter(timeout=math.nan), ValueError, ("finite",)),
    Refused("timeout-infinite", lambda: KafkaAdapter(timeout=math.inf), ValueError, ("finite",)),
    Refused(
        "the-aiokafka-record",
        lambda: msgdel.delete(record()),
        AdapterNotFound,
        ("broker client's own message", "msg: "),
    ),
)
async def test_a_wrong_argument_is_refused_saying_what_to_pass(row: Refused) -> None:
    await check(row)

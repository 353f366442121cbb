"""The confluent-kafka adapter's options, given a wrong type or value, and the URL and client
`delete_at` is given: each is refused at once, before anything is sent, saying what to pass."""

from __future__ import annotations

import math

import msgdel
from msgdel import UnsupportedDeletion
from msgdel.adapters.confluent import ConfluentAdapter
from msgdel.address import KafkaOffset
from tests.bad_input import Refused, check, rows

ORDER = [KafkaOffset("orders", 0, 41)]


@rows(
    Refused(
        "strategy-unknown",
        lambda: ConfluentAdapter("compact"),
        ValueError,
        ("'truncate' or 'tombstone'",),
    ),
    Refused(
        "protect-groups-a-number",
        lambda: ConfluentAdapter(protect_groups=0),
        TypeError,
        ("True or False",),
    ),
    Refused("timeout-negative", lambda: ConfluentAdapter(timeout=-1), ValueError, ("> 0",)),
    Refused("timeout-nan", lambda: ConfluentAdapter(timeout=math.nan), ValueError, ("finite",)),
    Refused("url-unknown-option", lambda: msgdel.delete_at(
                "kafka://me:hunter2@localhost:9092?linger.ms=5", ORDER, adapter=ConfluentAdapter()),
            ValueError, ("option 'linger.ms' is unknown",), secret="hunter2"),
    Refused("address-client-of-another-library", lambda: msgdel.delete_at(
                object(), ORDER, adapter=ConfluentAdapter()),
            UnsupportedDeletion, ("confluent_kafka.admin.AdminClient", "builtins.object")),
    Refused("address-with-the-tombstone-strategy", lambda: msgdel.delete_at(
                object(), ORDER, adapter=ConfluentAdapter("tombstone")),
            UnsupportedDeletion, ("not the key a tombstone needs", "strategy='truncate'")),
)  # fmt: skip
async def test_a_wrong_argument_is_refused_saying_what_to_pass(row: Refused) -> None:
    await check(row)

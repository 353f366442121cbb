"""The confluent-kafka adapter's options, given a wrong type or value: each is refused at once,
saying what to pass."""

from __future__ import annotations

import math

from msgdel.adapters.confluent import ConfluentAdapter
from tests.bad_input import Refused, check, rows


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
)
async def test_a_wrong_argument_is_refused_saying_what_to_pass(row: Refused) -> None:
    await check(row)

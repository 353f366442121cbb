"""Delete stream entries by address, outside any handler: the operator's path.

Run it against any Redis (``REDIS_URL``, default ``redis://localhost:6379``)::

    python docs/examples/delete_by_address.py
"""

from __future__ import annotations

import asyncio
import os

import redis.asyncio as redis

import msgdel
from msgdel.address import RedisEntry


async def main(url: str) -> None:
    client = redis.from_url(url, decode_responses=True)
    ids = [await client.xadd("orders", {"order": str(n)}) for n in range(3)]
    addresses = [RedisEntry("orders", ids[0]), RedisEntry.parse(f"orders:{ids[1]}")]

    preview = await msgdel.delete_at(url, addresses, dry_run=True)  # sends nothing
    print("dry run:", [r.outcome.name for r in preview], await client.xlen("orders"))

    for result in await msgdel.delete_at(url, addresses):  # a URL: connects, then closes
        print(result.outcome.name, result.target, result.ids)

    (again,) = await msgdel.delete_at(client, addresses[:1])  # or a client of your own
    print(again.outcome.name, "left:", await client.xrange("orders"))
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(main(os.environ.get("REDIS_URL", "redis://localhost:6379")))

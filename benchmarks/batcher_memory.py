"""One million deletions submitted through a Batcher: deletions per second and peak RSS.

The adapter is an in-process one (a real msgdel adapter over a Python set standing in for a
broker), so the figures measure the Batcher itself: queueing, coalescing, futures and
back-pressure. Peak RSS must stay bounded by ``max_pending``, not by the number submitted.

Run: ``.venv/bin/python -m benchmarks.batcher_memory [N]`` from the repository root.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from collections.abc import Sequence

import attrs

from msgdel import DeleteResult, Outcome, Registry, Semantics
from msgdel.batcher import Batcher


@attrs.frozen
class Entry:
    id: int


class InProcess:
    """Deletes from a set of live ids; one call per batch, like one XDEL per stream."""

    semantics = Semantics.EXACT

    def __init__(self) -> None:
        self.calls = 0
        self.deleted = 0

    async def delete(self, message: Entry, /) -> DeleteResult:
        return (await self.delete_many([message]))[0]

    async def delete_many(self, messages: Sequence[Entry], /) -> Sequence[DeleteResult]:
        self.calls += 1
        self.deleted += len(messages)
        await asyncio.sleep(0)  # one "round trip"
        return [
            DeleteResult("memory", "set", (m.id,), Semantics.EXACT, Outcome.DELETED, 1)
            for m in messages
        ]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main(count: int) -> None:
    adapter = InProcess()
    registry = Registry(builtins=False)
    registry.register(Entry, adapter)
    before = peak_rss_mb()
    began = time.perf_counter()
    async with Batcher(registry) as batcher:
        for i in range(count):
            await batcher.submit(Entry(i))
    elapsed = time.perf_counter() - began
    assert adapter.deleted == count
    print(f"submitted and deleted:  {count:,}")
    print(f"batches (delete_many):  {adapter.calls:,}")
    print(f"deletions per second:   {count / elapsed:,.0f}")
    print(f"peak RSS:               {peak_rss_mb():.0f} MB (before: {before:.0f} MB)")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000))

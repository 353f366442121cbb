"""One million deletions submitted through a Batcher: deletions per second and peak RSS.

The adapter is an in-process one (a real msgdel adapter over a Python set standing in for a
broker), so the figures measure the Batcher itself: queueing, coalescing, futures and
back-pressure. Peak RSS must stay bounded by ``max_pending``, not by the number submitted: the
figure is how much the peak RSS grew from the first 10% of the submissions to the end
(goal: at most 5 MiB, whatever N).

Run: ``.venv/bin/python benchmarks/batcher_memory.py [N] [--quick]``.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import attrs
from _common import figure, parser, sizes

from msgdel import BaseAdapter, DeleteResult, Features, Outcome, Registry, Semantics
from msgdel.batcher import Batcher


@attrs.frozen
class Entry:
    id: int


class InProcess(BaseAdapter):
    """Deletes from a set of live ids; one call per batch, like one XDEL per stream."""

    features = Features("memory", Semantics.EXACT)

    def __init__(self) -> None:
        self.calls = 0
        self.deleted = 0

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
    tenth = count // 10
    at_tenth = before
    began = time.perf_counter()
    async with Batcher(registry) as batcher:
        for i in range(count):
            await batcher.submit(Entry(i))
            if i == tenth:
                at_tenth = peak_rss_mb()
    elapsed = time.perf_counter() - began
    assert adapter.deleted == count
    peak = peak_rss_mb()
    print(f"submitted and deleted:  {count:,} (max_pending {batcher.max_pending:,})")
    print(f"batches (delete_many):  {adapter.calls:,}")
    print(f"deletions per second:   {count / elapsed:,.0f}")
    print(f"peak RSS:               {peak:.1f} MiB (before: {before:.1f} MiB, after 10% of the "
          f"submissions: {at_tenth:.1f} MiB)")  # fmt: skip
    figure(f"Batcher peak RSS growth, 10% to 100% of {count:,} submitted", peak - at_tenth,
           "<= 5", "MiB", note=f"peak {peak:.1f} MiB")  # fmt: skip
    figure("Batcher deletions per second (in-process adapter)", count / elapsed, None, "/s")


if __name__ == "__main__":
    options = parser(__doc__)
    options.add_argument("count", type=int, nargs="?", help="deletions (1,000,000)")
    args = sizes(options.parse_args(), count=(1_000_000, 200_000))
    asyncio.run(main(args.count))

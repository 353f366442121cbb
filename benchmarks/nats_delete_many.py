"""JetStream deletes per second: msgdel's ``delete_many`` vs nats-py's ``delete_msg`` one by one.

Run from the repository root (it starts its own nats-server from the test bed)::

    .venv/bin/python -m benchmarks.nats_delete_many            # 20,000 messages per run
    .venv/bin/python -m benchmarks.nats_delete_many --count 5000 --url nats://127.0.0.1:4222

Every run fills its own stream, consumes it into FastStream ``NatsMessage`` objects, deletes
every message and checks that the stream is empty afterwards. Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
from faststream.nats.message import NatsMessage
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from msgdel.adapters.nats import JetStreamAdapter


async def _fill(nc: Client, count: int) -> str:
    """A new stream holding ``count`` small messages; returns its name."""
    js = nc.jetstream()
    stream = f"bench_{uuid.uuid4().hex[:8]}"
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream}.in"]))
    for i in range(count):
        await nc.publish(f"{stream}.in", b"payload-%d" % i)
    await nc.flush()
    for _ in range(600):  # the server stores asynchronously; wait up to 30 s
        if (await js.stream_info(stream)).state.messages >= count:
            break
        await asyncio.sleep(0.05)
    return stream


async def _consume(nc: Client, stream: str, count: int) -> list[NatsMessage]:
    """Every message of ``stream`` as the NatsMessage a FastStream handler would receive."""
    sub = await nc.jetstream().pull_subscribe(
        f"{stream}.in",
        durable=f"{stream}_c",
        stream=stream,
        # As if FastStream had acknowledged each message already: no pending acks to track.
        config=ConsumerConfig(ack_policy=AckPolicy.NONE),
    )
    got: list[NatsMessage] = []
    while len(got) < count:
        for m in await sub.fetch(min(1000, count - len(got)), timeout=5):
            got.append(NatsMessage(raw_message=m, body=m.data))
    await sub.unsubscribe()
    return got


async def _timed(label: str, count: int, run: Callable[[], Awaitable[Any]]) -> float:
    began = time.perf_counter()
    await run()
    seconds = time.perf_counter() - began
    rate = count / seconds
    print(f"{label:<52} {seconds:7.2f} s  {rate:9,.0f} deletes/s")
    return rate


async def _check_empty(nc: Client, stream: str) -> None:
    messages = (await nc.jetstream().stream_info(stream)).state.messages
    if messages:
        raise SystemExit(f"stream {stream} still holds {messages} messages")


async def bench(url: str, count: int, concurrency: int) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    try:
        print(f"{count:,} JetStream messages per run, {concurrency} requests in flight\n")

        stream = await _fill(nc, count)

        async def one_by_one() -> None:
            for seq in range(1, count + 1):
                await js.delete_msg(stream, seq)

        baseline = await _timed(
            "nats-py delete_msg, awaited one at a time (erase)", count, one_by_one
        )
        await _check_empty(nc, stream)

        rates: dict[str, float] = {}
        for erase in (False, True):
            stream = await _fill(nc, count)
            messages = await _consume(nc, stream, count)
            adapter = JetStreamAdapter(erase=erase, concurrency=concurrency)
            label = f"msgdel delete_many ({'erase' if erase else 'no_erase, default'})"

            async def run(adapter: JetStreamAdapter = adapter, messages: Any = messages) -> None:
                await adapter.delete_many(messages)

            rates[label] = await _timed(label, count, run)
            await _check_empty(nc, stream)

        print()
        for label, rate in rates.items():
            print(f"{label:<52} {rate / baseline:5.1f}x nats-py one by one")
    finally:
        await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--url", help="an existing NATS server with JetStream (default: start one)")
    args = parser.parse_args()
    if args.url:
        asyncio.run(bench(args.url, args.count, args.concurrency))
        return
    from tests.testbed.nats import NatsServer

    with tempfile.TemporaryDirectory() as workdir:
        server = NatsServer(Path(workdir))
        server.start()
        try:
            asyncio.run(bench(server.url, args.count, args.concurrency))
        finally:
            server.stop()


if __name__ == "__main__":
    main()

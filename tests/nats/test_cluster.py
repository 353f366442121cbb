"""JetStream on the test bed's three-node cluster: deleting from replicated (R3) streams.

The deletions go to the stream leader wherever it is; a leader step-down or a stopped node in
the middle of a ``delete_many`` gives each message its result or a retryable
``DeletionFailed``, and retrying the failed ones finishes the work.

Every check reads each node's own replica, never only the leader's answer (a
``STREAM.INFO`` through any node is answered by the leader): the node's monitoring ``/jsz``
(its local stream state: how many messages, the last sequence) and a direct get of every
sequence on a connection to that node (the stream allows direct gets, and a node answers
them from its own replica). Replicas apply a deletion after the leader answered it, so the
checks poll until they agree (:func:`tests.eventually.eventually`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import nats
import pytest
from nats.aio.client import Client

import msgdel
from msgdel import DeleteResult, DeletionFailed, MsgdelError, Outcome
from msgdel.adapters.nats import JetStreamAdapter
from msgdel.address import JetStreamSequence
from tests.eventually import eventually
from tests.nats.harness import JetStreamHarness
from tests.testbed.nats_cluster import NatsCluster, NatsNode

REPLICATED = {"num_replicas": 3, "allow_direct": True}
"""The streams' configuration: a replica on every node, direct gets answered by any."""

CAUGHT_UP = 15.0
"""Seconds to wait for every replica to show the same state (or a new leader)."""

COUNT, EVERY = 500, 5
"""The failover specs publish ``COUNT`` messages and delete all but every ``EVERY``-th."""


def adapter() -> JetStreamAdapter:
    """Few requests in flight (so a fault lands in the middle), and a short timeout (a
    request the old leader never answers fails after 0.5 s, not 5)."""
    return JetStreamAdapter(concurrency=2, timeout=0.5)


# -- reading each node's replica ----------------------------------------------------------------
async def local_messages(node: NatsNode, stream: str) -> tuple[int, int] | None:
    """``(messages, last_seq)`` of ``stream`` in ``node``'s own replica (its ``/jsz``);
    None when the node holds no replica of it (yet)."""
    jsz = await asyncio.to_thread(node.monitor, "jsz?accounts=true&streams=true")
    for account in jsz.get("account_details") or []:
        for detail in account.get("stream_detail") or []:
            if detail.get("name") == stream:
                state = detail.get("state") or {}
                return int(state.get("messages") or 0), int(state.get("last_seq") or 0)
    return None


async def direct_stored(client: Client, stream: str, seqs: Sequence[int]) -> list[int]:
    """Which of ``seqs`` a direct get through ``client`` finds (404: not stored)."""
    found = []
    for seq in seqs:
        reply = await client.request(f"$JS.API.DIRECT.GET.{stream}", b'{"seq":%d}' % seq, timeout=2)
        if (reply.headers or {}).get("Nats-Sequence") == str(seq):
            found.append(seq)
    return found


async def node_view(node: NatsNode, stream: str, seqs: Sequence[int]) -> tuple[Any, list[int]]:
    """What ``node``'s replica holds of ``stream``: its local ``(messages, last_seq)``, and
    which of ``seqs`` it stores."""
    client = await nats.connect(node.url, allow_reconnect=False, connect_timeout=2)
    try:
        return await local_messages(node, stream), await direct_stored(client, stream, seqs)
    finally:
        await client.close()


async def views(nodes: Sequence[NatsNode], stream: str, seqs: Sequence[int]) -> dict[str, Any]:
    """:func:`node_view` of every node in ``nodes``, by server name; a node that cannot be
    read shows its error (then the caller polls again)."""
    seen: dict[str, Any] = {}
    for node in nodes:
        try:
            seen[node.server_name] = await node_view(node, stream, seqs)
        except Exception as exc:
            seen[node.server_name] = repr(exc)
    return seen


async def stored_everywhere(
    nodes: Sequence[NatsNode], stream: str, seqs: Sequence[int], kept: Sequence[int], last: int
) -> dict[str, Any]:
    """Poll until every node's replica holds exactly ``kept`` of ``seqs`` (and ``len(kept)``
    messages up to ``last``); the last views seen, for the assertion."""
    expected = expected_views(nodes, kept, last)
    return await eventually(lambda: views(nodes, stream, seqs), expected, within=CAUGHT_UP)


def expected_views(nodes: Sequence[NatsNode], kept: Sequence[int], last: int) -> dict[str, Any]:
    """What :func:`views` shows when every node holds exactly ``kept``, up to ``last``."""
    return {n.server_name: ((len(kept), last), sorted(kept)) for n in nodes}


# -- the cluster --------------------------------------------------------------------------------
@pytest.fixture
def cluster(nats_cluster: NatsCluster) -> Iterator[NatsCluster]:
    """The session's cluster, all three nodes running before and after each spec."""
    assert nats_cluster.running, "a spec before left a node stopped"
    yield nats_cluster
    if not nats_cluster.running:
        nats_cluster.start()  # the stopped nodes, together


async def stream_leader(harness: JetStreamHarness, stream: str, not_on: str = "") -> str:
    """The server name of ``stream``'s leader once it has one (not ``not_on``)."""
    for _ in range(int(CAUGHT_UP / 0.05)):
        try:
            info = (await harness.js.stream_info(stream)).cluster
        except Exception:  # no leader to answer right now
            info = None
        if info is not None and info.leader and info.leader != not_on:
            return info.leader
        await asyncio.sleep(0.05)
    raise AssertionError(f"stream {stream} has no leader (other than {not_on!r})")


async def step_down(harness: JetStreamHarness, stream: str) -> None:
    """Ask ``stream``'s leader to step down (it answers before a new leader is elected)."""
    reply = await harness.reader.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}", b"", 5)
    assert b'"success":true' in reply.data, reply.data


async def away_from(harness: JetStreamHarness, stream: str, server_name: str) -> str:
    """Step ``stream``'s leader down until it is not on ``server_name``; its leader."""
    leader = await stream_leader(harness, stream)
    while leader == server_name:
        await step_down(harness, stream)
        leader = await stream_leader(harness, stream, not_on=leader)
    return leader


def seqs_of(messages: Sequence[Any]) -> list[int]:
    return [int(m.raw_message.metadata.sequence.stream) for m in messages]


# -- a fault in the middle of delete_many -------------------------------------------------------
Outcomes = list[DeleteResult | MsgdelError]


async def delete_many_with_fault(
    harness: JetStreamHarness,
    stream: str,
    messages: Sequence[Any],
    fault: Callable[[], Awaitable[None]],
) -> Outcomes:
    """``delete_many(messages)``, starting ``fault()`` once a twentieth of the deletion requests
    reached the server; asserts the call was still under way when the fault began."""
    seen = 0
    started = asyncio.Event()

    async def count(msg: Any) -> None:
        nonlocal seen
        seen += 1
        if seen >= len(messages) // 20:
            started.set()

    watcher = await harness.reader.subscribe(f"$JS.API.STREAM.MSG.DELETE.{stream}", cb=count)
    await harness.reader.flush()
    try:
        call = asyncio.ensure_future(
            msgdel.delete_many(messages, registry=harness.registry, return_exceptions=True)
        )
        await asyncio.wait_for(started.wait(), CAUGHT_UP)
        faulting = asyncio.ensure_future(fault())
        await asyncio.sleep(0)  # the fault has begun: a request sent, a signal given
        assert not call.done(), "the fault came after the call had finished"
        await faulting
        outcomes: Outcomes = await call
        return outcomes
    finally:
        await watcher.unsubscribe()


def assert_truthful(outcomes: Outcomes) -> list[int]:
    """Every outcome is a result or a retryable ``DeletionFailed``; the indexes that failed."""
    wrong = [
        o
        for o in outcomes
        if not isinstance(o, DeleteResult) and not (isinstance(o, DeletionFailed) and o.retryable)
    ]
    assert not wrong, f"{len(wrong)} outcomes are neither results nor retryable: {wrong[:3]}"
    allowed = {Outcome.DELETED, Outcome.ALREADY_GONE}
    assert {o.outcome for o in outcomes if isinstance(o, DeleteResult)} <= allowed
    return [i for i, o in enumerate(outcomes) if not isinstance(o, DeleteResult)]


async def retry_failed(
    harness: JetStreamHarness, messages: Sequence[Any], failed: list[int]
) -> list[int]:
    """Delete the ``failed`` messages again, as a caller would, until none fails (each
    attempt truthful, at most 20, 0.2 s apart); the attempts' failure counts."""
    counts: list[int] = []
    for _ in range(20):
        if not failed:
            return counts
        again = [messages[i] for i in failed]
        outcomes = await msgdel.delete_many(
            again, registry=harness.registry, return_exceptions=True
        )
        failed = [failed[i] for i in assert_truthful(outcomes)]
        counts.append(len(failed))
        await asyncio.sleep(0.2)
    raise AssertionError(f"retries did not finish the work: {counts}")


async def contradictions(
    nodes: Sequence[NatsNode],
    stream: str,
    seqs: Sequence[int],
    gone: Sequence[int],
    kept: Sequence[int],
) -> dict[str, Any]:
    """Per node: the sequences of ``gone`` it still stores, and those of ``kept`` it lost."""
    seen: dict[str, Any] = {}
    for node in nodes:
        try:
            _, stored = await node_view(node, stream, seqs)
        except Exception as exc:
            seen[node.server_name] = repr(exc)
            continue
        seen[node.server_name] = (
            sorted(set(gone) & set(stored)),
            sorted(set(kept) - set(stored)),
        )
    return seen


def claimed(messages: Sequence[Any], outcomes: Outcomes) -> list[int]:
    """The sequences whose outcome is a result (each claims its sequence is gone)."""
    return [s for s, o in zip(seqs_of(messages), outcomes) if isinstance(o, DeleteResult)]


# -- the specs ----------------------------------------------------------------------------------
async def test_delete_many_on_an_r3_stream_removes_exactly_those_sequences_on_every_node(
    cluster: NatsCluster,
) -> None:
    async with JetStreamHarness(cluster.nodes[0], pull=True, stream=REPLICATED) as harness:
        async with harness.consumed(6) as got:
            chosen = [got.messages[i] for i in (1, 2, 4)]
            results = await msgdel.delete_many(chosen, registry=harness.registry)
        assert [r.outcome for r in results] == [Outcome.DELETED] * 3
        assert [r.ids for r in results] == [got.ids[i] for i in (1, 2, 4)]
        everything = seqs_of(got.messages)
        kept = [everything[i] for i in (0, 3, 5)]
        seen = await stored_everywhere(cluster.nodes, got.target, everything, kept, everything[-1])
        assert seen == expected_views(cluster.nodes, kept, everything[-1])


async def test_delete_at_sequences_of_an_r3_stream_removes_exactly_those_on_every_node(
    cluster: NatsCluster,
) -> None:
    async with JetStreamHarness(cluster.nodes[1], stream=REPLICATED) as harness:
        stream, ids = await harness.create(5)  # no consumer: none holds a message
        everything = [int(seq) for (seq,) in ids]
        chosen = [JetStreamSequence(stream, everything[i]) for i in (0, 3)]
        results = await msgdel.delete_at(harness.reader, chosen, adapter=adapter())
        assert [r.outcome for r in results] == [Outcome.DELETED] * 2
        kept = [everything[i] for i in (1, 2, 4)]
        seen = await stored_everywhere(cluster.nodes, stream, everything, kept, everything[-1])
        assert seen == expected_views(cluster.nodes, kept, everything[-1])


async def failover(
    cluster: NatsCluster,
    harness: JetStreamHarness,
    got: Any,
    fault: Callable[[], Awaitable[None]],
    remaining: Callable[[], Sequence[NatsNode]],
) -> None:
    """Delete all but every ``EVERY``-th consumed message with ``fault()`` in the middle;
    check the first call's outcomes against every remaining node, retry the failures, and
    check that exactly the requested sequences are gone on every remaining node."""
    everything = seqs_of(got.messages)
    chosen = [m for i, m in enumerate(got.messages) if i % EVERY != EVERY - 1]
    requested = set(seqs_of(chosen))
    kept = [s for s in everything if s not in requested]
    outcomes = await delete_many_with_fault(harness, got.target, chosen, fault)
    failed = assert_truthful(outcomes)
    # What a result reports gone is gone on every node that is up, and no neighbour went;
    # a failed request (a timeout) may or may not have been carried out.
    nodes = remaining()
    gone = claimed(chosen, outcomes)
    truthful: dict[str, Any] = {n.server_name: ([], []) for n in nodes}
    untrue = await eventually(
        lambda: contradictions(nodes, got.target, everything, gone, kept),
        truthful,
        within=CAUGHT_UP,
    )
    assert untrue == truthful, "per node: (reported gone yet stored, neighbours lost)"
    await retry_failed(harness, chosen, failed)
    seen = await stored_everywhere(nodes, got.target, everything, kept, everything[-1])
    assert seen == expected_views(nodes, kept, everything[-1])


async def test_a_leader_step_down_in_delete_many_fails_only_retryably_and_a_retry_finishes(
    cluster: NatsCluster,
) -> None:
    async with (
        JetStreamHarness(
            cluster.nodes[0], pull=True, stream=REPLICATED, adapter=adapter()
        ) as harness,
        harness.consumed(COUNT) as got,
    ):
        before = await stream_leader(harness, got.target)

        async def fault() -> None:
            await step_down(harness, got.target)

        await failover(cluster, harness, got, fault, lambda: cluster.nodes)
        assert await stream_leader(harness, got.target, not_on=before) != before


async def test_a_stopped_follower_in_delete_many_fails_only_retryably_and_a_retry_finishes(
    cluster: NatsCluster,
) -> None:
    client_node = cluster.nodes[0]
    async with (
        JetStreamHarness(client_node, pull=True, stream=REPLICATED, adapter=adapter()) as harness,
        harness.consumed(COUNT) as got,
    ):
        leader = await away_from(harness, got.target, client_node.server_name)
        follower = next(
            n for n in cluster.nodes if n.server_name not in (leader, client_node.server_name)
        )

        def fault() -> Awaitable[None]:
            return asyncio.to_thread(follower.stop)

        others = [n for n in cluster.nodes if n is not follower]
        await failover(cluster, harness, got, fault, lambda: others)
        await asyncio.to_thread(cluster.start_node, follower)
        everything = seqs_of(got.messages)
        kept = everything[EVERY - 1 :: EVERY]
        seen = await stored_everywhere([follower], got.target, everything, kept, everything[-1])
        assert seen == expected_views([follower], kept, everything[-1]), "it caught up"


async def test_a_stopped_leader_in_delete_many_fails_only_retryably_and_a_retry_finishes(
    cluster: NatsCluster,
) -> None:
    client_node = cluster.nodes[0]
    async with (
        JetStreamHarness(client_node, pull=True, stream=REPLICATED, adapter=adapter()) as harness,
        harness.consumed(COUNT) as got,
    ):
        leader = cluster.node(await away_from(harness, got.target, client_node.server_name))

        def fault() -> Awaitable[None]:
            return asyncio.to_thread(leader.stop)

        others = [n for n in cluster.nodes if n is not leader]
        await failover(cluster, harness, got, fault, lambda: others)
        assert await stream_leader(harness, got.target, not_on=leader.server_name)
        await asyncio.to_thread(cluster.start_node, leader)
        everything = seqs_of(got.messages)
        kept = everything[EVERY - 1 :: EVERY]
        seen = await stored_everywhere([leader], got.target, everything, kept, everything[-1])
        assert seen == expected_views([leader], kept, everything[-1]), "it caught up"


LOST_QUORUM = 20.0
"""Seconds to wait for a stream without its quorum to answer at all (nats-server 2.9 answers
within 1 s, 2.15 after about 8 s; until then requests time out)."""


async def test_a_stream_that_lost_its_quorum_fails_retryably_and_a_retry_deletes_once_it_is_back(
    cluster: NatsCluster,
) -> None:
    meta_leader = cluster.nodes[0].meta_leader()
    survivor = next(n for n in cluster.nodes if n.server_name != meta_leader)
    async with JetStreamHarness(survivor, stream=REPLICATED) as harness:
        stream, ids = await harness.create(3)
        everything = [int(seq) for (seq,) in ids]
        address = [JetStreamSequence(stream, everything[1])]
        # the survivor leads neither the stream nor JetStream, and the others crash: it
        # cannot have been told it leads alone
        await away_from(harness, stream, survivor.server_name)
        for node in cluster.nodes:
            if node is not survivor:
                node.kill()
        failures: list[MsgdelError] = []
        try:
            deadline = asyncio.get_running_loop().time() + LOST_QUORUM
            while asyncio.get_running_loop().time() < deadline:
                outcome = (
                    await msgdel.delete_at(
                        harness.reader, address, adapter=adapter(), return_exceptions=True
                    )
                )[0]
                assert isinstance(outcome, MsgdelError), "deleted without a quorum"
                failures.append(outcome)
                if "did not answer in time" not in str(outcome):
                    break  # the server answered: what does msgdel make of it?
                await asyncio.sleep(0.25)
        finally:
            await asyncio.to_thread(cluster.start)
        wrong = [f for f in failures if not (isinstance(f, DeletionFailed) and f.retryable)]
        assert not wrong, f"not retryable, yet the quorum came back: {wrong[0]}"
        for _ in range(int(CAUGHT_UP / 0.25)):  # until the stream has a leader again
            outcome = (
                await msgdel.delete_at(
                    harness.reader, address, adapter=adapter(), return_exceptions=True
                )
            )[0]
            if isinstance(outcome, DeleteResult):
                break
            await asyncio.sleep(0.25)
        assert isinstance(outcome, DeleteResult), outcome
        assert outcome.outcome is Outcome.DELETED
        kept = [everything[0], everything[2]]
        seen = await stored_everywhere(cluster.nodes, stream, everything, kept, everything[-1])
        assert seen == expected_views(cluster.nodes, kept, everything[-1])

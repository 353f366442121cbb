"""Erasure on MQTT: the retained message of each named topic is cleared.

A broker keeps at most one message per topic, the retained one; everything else was
delivered and is gone. Each topic is cleared through the MQTT adapter's address path
(`delete_at` with [`RetainedTopic`][msgdel.address.RetainedTopic]): it checks at the broker
whether the topic retains a message and clears it with an empty retained publish. A dry run
makes the same check and publishes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

try:
    import zmqtt
except ImportError as exc:  # the extra is not installed
    from msgdel.adapters._extra import missing

    raise missing("mqtt") from exc

from msgdel.adapters.mqtt import MQTTAdapter
from msgdel.address import RetainedTopic
from msgdel.erasure import ErasureReport, Options, RetainedTopics, failed, found, unerasable
from msgdel.errors import MsgdelError
from msgdel.result import DeleteResult
from msgdel.semantics import Outcome


async def erase(
    connection: object, targets: Sequence[Any], options: Options
) -> list[ErasureReport]:
    """Erase `targets` on `connection` (a URL, or a connected zmqtt `MQTTClient`)."""
    adapter = MQTTAdapter()
    if isinstance(connection, str):
        try:
            async with adapter.connect(connection) as client:
                return [await _erase(adapter, client, t, options) for t in targets]
        except MsgdelError as exc:  # could not connect: nothing was sent
            return [failed(t, exc) for t in targets]
    if not isinstance(connection, zmqtt.MQTTClient):
        kind = type(connection)
        raise TypeError(
            f"MQTT targets are erased on a connected zmqtt.MQTTClient or an mqtt:// URL, got "
            f"{kind.__module__}.{kind.__qualname__}; nothing was sent"
        )
    return [await _erase(adapter, connection, t, options) for t in targets]


async def _erase(
    adapter: MQTTAdapter, client: Any, target: object, options: Options
) -> ErasureReport:
    if not isinstance(target, RetainedTopics):
        return unerasable(target, "an MQTT connection erases RetainedTopics targets")  # type: ignore[arg-type]
    if options.dry_run:
        try:
            # the check the erasure makes, so a dry run finds what it would clear
            retains = [await adapter.retains(client, topic) for topic in target.topics]
        except MsgdelError as exc:
            return failed(target, exc)
        return found(target, options, sum(retains), 0)
    import msgdel

    outcomes = await msgdel.delete_at(
        client, [RetainedTopic(t) for t in target.topics], adapter=adapter, return_exceptions=True
    )
    results = [o for o in outcomes if isinstance(o, DeleteResult)]
    matched = sum(1 for r in results if r.outcome is Outcome.DELETED)
    removed = sum(r.removed for r in results)
    errors = [o for o in outcomes if isinstance(o, MsgdelError)]
    if errors:
        return failed(
            target, f"{len(errors)} of {len(outcomes)} topics were not cleared ({errors[0]}); "
            "run it again to finish", matched=matched, removed=removed,
        )  # fmt: skip
    return found(target, options, matched, removed)

"""Erasure on NATS: a JetStream purge by subject, a KV purge of the key, an object delete.

- [`JetStreamSubject`][msgdel.erasure.JetStreamSubject]: the matching messages are counted
  with the stream's per-subject state (`$JS.API.STREAM.INFO` with `subjects_filter`) and
  removed with one `$JS.API.STREAM.PURGE` whose `filter` is the subject; the server's
  `purged` count is `removed`. A purge removes the messages for every consumer.
- [`KvKey`][msgdel.address.KvKey]: the key's records are counted the same way on the
  bucket's stream, and purged with a rollup (`KV-Operation: PURGE`, `Nats-Rollup: sub`),
  which removes every revision of the key (a KV delete would keep its history). One purge
  marker, holding no value, stays under the key.
- [`ObjectName`][msgdel.erasure.ObjectName]: the object store's delete, which purges the
  object's chunks and leaves a deleted-marker for its name.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Sequence
from typing import Any

try:
    import nats
    import nats.errors
    import nats.js.errors
    from nats.aio.client import Client
except ImportError as exc:  # the extra is not installed
    from msgdel.adapters._extra import missing

    raise missing("nats") from exc

from msgdel.adapters.nats import JetStreamAdapter
from msgdel.address import KvKey
from msgdel.erasure import (
    ErasureReport,
    JetStreamSubject,
    ObjectName,
    Options,
    failed,
    found,
    unerasable,
)
from msgdel.errors import MsgdelError

API = "$JS.API"
TIMEOUT = 10.0
"""Seconds to wait for one JetStream API reply (a purge of a large stream takes a while)."""
_STREAM_NOT_FOUND = 10059
_KV_MARKER_NOTE = (
    "every revision of the key was purged (a rollup); one purge marker, holding no value, "
    "stays under the key"
)


class _Refused(Exception):
    """The JetStream API answered with an error."""

    def __init__(self, error: dict[str, Any]) -> None:
        self.code = int(error.get("err_code", 0))
        self.description = str(error.get("description", "error"))
        super().__init__(f"{self.description} (err_code {self.code})")


async def erase(
    connection: object, targets: Sequence[Any], options: Options
) -> list[ErasureReport]:
    """Erase `targets` one after the other on `connection` (a URL, or a nats-py `Client`)."""
    if isinstance(connection, str):
        try:
            async with JetStreamAdapter().connect(connection) as client:
                return await _erase_all(client, targets, options)
        except MsgdelError as exc:  # could not connect: nothing was sent
            return [failed(t, exc) for t in targets]
    if not isinstance(connection, Client):
        kind = type(connection)
        raise TypeError(
            f"NATS targets are erased on a connected nats.aio.client.Client or a nats:// URL, "
            f"got {kind.__module__}.{kind.__qualname__}; nothing was sent"
        )
    return await _erase_all(connection, targets, options)


async def _erase_all(
    client: Client, targets: Sequence[Any], options: Options
) -> list[ErasureReport]:
    reports = []
    for target in targets:
        try:
            if isinstance(target, JetStreamSubject):
                report = await _subject(client, target, options)
            elif isinstance(target, KvKey):
                report = await _kv_key(client, target, options)
            elif isinstance(target, ObjectName):
                report = await _object(client, target, options)
            else:
                report = unerasable(target, f"a NATS connection does not erase {type(target)}")
        except _Refused as exc:
            report = failed(target, f"JetStream refused: {exc}; run it again to finish")
        except (nats.errors.Error, asyncio.TimeoutError, OSError) as exc:
            report = failed(target, f"{type(exc).__name__}: {exc}; run it again to finish")
        reports.append(report)
    return reports


async def _api(client: Client, subject: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    payload = json.dumps(body).encode() if body is not None else b""
    reply = await client.request(f"{API}.{subject}", payload, timeout=TIMEOUT)
    data: dict[str, Any] = json.loads(reply.data)
    if "error" in data:
        raise _Refused(data["error"])
    return data


async def _count(client: Client, stream: str, subject: str) -> int:
    """How many messages `stream` stores on subjects matching `subject` (every page)."""
    total = offset = 0
    while True:
        info = await _api(
            client, f"STREAM.INFO.{stream}", {"subjects_filter": subject, "offset": offset}
        )
        subjects = (info.get("state") or {}).get("subjects") or {}
        total += sum(int(n) for n in subjects.values())
        offset += len(subjects)
        if not subjects or offset >= int(info.get("total", 0)):
            return total


async def _subject(client: Client, target: JetStreamSubject, options: Options) -> ErasureReport:
    try:
        matched = await _count(client, target.stream, target.subject)
    except _Refused as exc:
        if exc.code == _STREAM_NOT_FOUND:
            return unerasable(
                target, f"NATS has no JetStream stream {target.stream!r} (check the name)"
            )
        raise
    if options.dry_run or matched == 0:
        return found(target, options, matched, 0)
    try:
        reply = await _api(client, f"STREAM.PURGE.{target.stream}", {"filter": target.subject})
    except _Refused as exc:
        return unerasable(target, f"the stream refused the purge: {exc.description}")
    return found(
        target, options, matched, int(reply.get("purged", 0)),
        reason="purged for every consumer of the stream",
    )  # fmt: skip


async def _kv_key(client: Client, target: KvKey, options: Options) -> ErasureReport:
    stream, subject = f"KV_{target.bucket}", f"$KV.{target.bucket}.{target.key}"
    try:
        stored = await _count(client, stream, subject)
    except _Refused as exc:
        if exc.code == _STREAM_NOT_FOUND:
            return unerasable(target, f"NATS has no KV bucket {target.bucket!r} (check the name)")
        raise
    if stored == 1 and await _last_is_purge(client, stream, subject):
        stored = 0  # erased before: only the value-less purge marker is left
    if options.dry_run or stored == 0:
        return found(target, options, stored, 0)
    js = client.jetstream()
    await js.publish(subject, b"", headers={"KV-Operation": "PURGE", "Nats-Rollup": "sub"})
    left = await _count(client, stream, subject)
    return found(target, options, stored, stored - max(left - 1, 0), reason=_KV_MARKER_NOTE)


async def _last_is_purge(client: Client, stream: str, subject: str) -> bool:
    try:
        reply = await _api(client, f"STREAM.MSG.GET.{stream}", {"last_by_subj": subject})
    except _Refused:
        return False
    headers = reply.get("message", {}).get("hdrs")
    if not headers:
        return False
    return b"KV-Operation: PURGE" in base64.b64decode(headers)


async def _object(client: Client, target: ObjectName, options: Options) -> ErasureReport:
    js = client.jetstream()
    try:
        store = await js.object_store(target.bucket)
    except nats.js.errors.BucketNotFoundError:
        return unerasable(target, f"NATS has no object store {target.bucket!r} (check the name)")
    try:
        info = await store.get_info(target.name)
    except (nats.js.errors.ObjectNotFoundError, nats.js.errors.ObjectDeletedError):
        return found(target, options, 0, 0)
    if info.deleted:
        return found(target, options, 0, 0)
    if options.dry_run:
        return found(target, options, 1, 0)
    await store.delete(target.name)
    return found(
        target, options, 1, 1,
        reason=f"the object and its {info.chunks or 0} chunks were purged; a deleted-marker "
        "stays under its name",
    )  # fmt: skip

"""``msgdel delete redis://... STREAM:ID...``, run for real against the test bed's Redis 8.2:
what it deletes, what a dry run leaves, its JSON lines, standard input, and bad arguments."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from msgdel.cli.app import app


def invoke(*args: str, stdin: str | None = None, **env: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["delete", *args], input=stdin, env={"COLUMNS": "200", **env})
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def stream(redis8_server: Any) -> Iterator[tuple[Any, str]]:
    """A client of the test bed's Redis 8.2 and a stream name of this test alone."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=redis8_server.port, decode_responses=True)
    name = f"cli-{uuid.uuid4().hex[:8]}"
    try:
        yield client, name
    finally:
        client.delete(name)
        client.close()


def add(client: Any, stream: str, count: int) -> list[str]:
    return [client.xadd(stream, {"n": str(n)}) for n in range(count)]


def test_it_deletes_the_named_entries_and_leaves_their_neighbours(
    redis8_server: Any, stream: tuple[Any, str]
) -> None:
    client, name = stream
    ids = add(client, name, 3)
    status, out, err = invoke(redis8_server.url, f"{name}:{ids[0]}", f"{name}:{ids[2]}")
    assert (status, err) == (0, "")
    assert [entry_id for entry_id, _ in client.xrange(name)] == [ids[1]]
    assert f"{name}:{ids[0]}" in out
    assert "deleted 2" in out


def test_a_dry_run_sends_nothing(redis8_server: Any, stream: tuple[Any, str]) -> None:
    client, name = stream
    ids = add(client, name, 2)
    status, out, _ = invoke(redis8_server.url, f"{name}:{ids[0]}", "--dry-run")
    assert status == 0
    assert "dry run: nothing was sent" in out
    assert "skipped 1" in out
    assert client.xlen(name) == 2


def test_json_gives_one_object_per_address(redis8_server: Any, stream: tuple[Any, str]) -> None:
    client, name = stream
    (first,) = add(client, name, 1)
    status, out, _ = invoke(redis8_server.url, f"{name}:{first}", f"{name}:1-1", "--json")
    assert status == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(x["address"], x["outcome"], x["removed"]) for x in lines] == [
        (f"{name}:{first}", "deleted", 1),
        (f"{name}:1-1", "already_gone", 0),
    ]
    assert lines[0]["semantics"] == "exact"


def test_thousands_of_addresses_from_standard_input_are_deleted_in_batches(
    redis8_server: Any, stream: tuple[Any, str]
) -> None:
    client, name = stream
    pipe = client.pipeline()
    for n in range(1, 1201):
        pipe.xadd(name, {"n": str(n)}, id=f"{n}-0")
    pipe.execute()
    lines = "# from a log\n\n" + "".join(f"{name}:{n}-0\n" for n in range(1, 1201))
    status, out, err = invoke(redis8_server.url, "--json", stdin=lines)
    assert status == 0, err
    assert client.xlen(name) == 0
    assert [json.loads(line)["outcome"] for line in out.splitlines()] == ["deleted"] * 1200
    assert "deleting" in err  # the progress bar, on standard error


def test_with_a_group_the_entries_are_acknowledged_too(
    redis8_server: Any, stream: tuple[Any, str]
) -> None:
    client, name = stream
    client.xgroup_create(name, "billing", id="0", mkstream=True)
    add(client, name, 2)
    delivered = client.xreadgroup("billing", "b1", {name: ">"})
    ids = [entry_id for entry_id, _ in delivered[0][1]]
    status, _, _ = invoke(redis8_server.url, "--group", "billing", *(f"{name}:{i}" for i in ids))
    assert status == 0
    assert client.xlen(name) == 0
    assert client.xpending(name, "billing")["pending"] == 0


def test_an_entry_another_group_still_needs_is_kept_unless_told_otherwise(
    redis8_server: Any, stream: tuple[Any, str]
) -> None:
    client, name = stream
    client.xgroup_create(name, "shipping", id="0", mkstream=True)
    (entry,) = add(client, name, 1)
    status, out, _ = invoke(redis8_server.url, f"{name}:{entry}", "--json")
    assert (status, json.loads(out)["outcome"]) == (0, "deferred")
    assert client.xlen(name) == 1
    status, out, _ = invoke(redis8_server.url, f"{name}:{entry}", "--json",
                            "--ignore-other-readers")  # fmt: skip
    assert (status, json.loads(out)["outcome"]) == (0, "deleted")
    assert client.xlen(name) == 0


def test_an_unreachable_broker_fails_with_status_1_and_no_password_in_the_output() -> None:
    status, out, err = invoke("redis://operator@127.0.0.1:1", "orders:1-0", "--json",
                              MSGDEL_PASSWORD="hunter2")  # fmt: skip
    assert status == 1
    (line,) = [json.loads(x) for x in out.splitlines()]
    assert (line["error"], line["retryable"]) == ("DeletionFailed", True)
    assert "hunter2" not in out + err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["redis://localhost", "orders:12"], "ADDRESS 'orders:12': RedisEntry.entry_id must be"),
        (["redis://localhost", "orders"], "write it as 'STREAM:1700000000000-0'"),
        (["amqp://guest:secret@localhost/", "q"], "a RabbitMQ queue has no addresses"),
        (["http://localhost", "x"], "is not a broker URL msgdel knows"),
        (["redis://localhost", "s:1-0", "--kv", "b"], "--kv is for NATS KV buckets"),
        (["kafka://localhost:9092", "t:0:1", "--group", "g"], "--group is for Redis"),
        (["mqtt://localhost", "a/b", "--ignore-other-readers"], "does not apply to RetainedTopic"),
        (["redis://localhost"], "no ADDRESS given"),
    ],
)
def test_a_bad_argument_is_one_line_with_status_2_and_nothing_sent(
    args: list[str], says: str
) -> None:
    status, out, err = invoke(*args, stdin="")
    assert status == 2
    assert out == ""
    assert says in err
    assert len(err.strip().splitlines()) == 1
    assert "secret" not in err

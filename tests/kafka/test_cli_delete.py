"""``msgdel delete kafka://... TOPIC:PARTITION:OFFSET``, run for real against the test bed's
Kafka: truncation is shown, partition by partition, and asked for before it is sent."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.kafka_family import KafkaClient, Server, unique


def msgdel_delete(*args: str, answer: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "msgdel.cli", "delete", *args],
        input=answer, capture_output=True, text=True, timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


async def five_records(client: KafkaClient, server: Server) -> str:
    topic = unique("cli")
    await client.create_topic(server, topic, assignment=[[1]])
    await client.produce(server, topic, [None] * 5, partition=0)
    return topic


async def test_truncation_shows_the_offsets_that_go_and_is_not_sent_when_declined(
    client: KafkaClient, kafka_server: Server
) -> None:
    topic = await five_records(client, kafka_server)
    run = msgdel_delete(f"kafka://{kafka_server.url}", f"{topic}:0:2", answer="n\n")
    assert run.returncode == 1
    assert f"{topic}   0           0             2           3" in run.stderr
    assert "Remove 3 records?" in run.stderr
    assert await client.log_range(kafka_server, topic) == (0, 5)


async def test_yes_truncates_and_a_dry_run_sends_nothing(
    client: KafkaClient, kafka_server: Server
) -> None:
    topic = await five_records(client, kafka_server)
    url = f"kafka://{kafka_server.url}"
    dry = msgdel_delete(url, f"{topic}:0:1", "--dry-run", "--json")
    assert json.loads(dry.stdout)["outcome"] == "skipped"
    assert await client.log_range(kafka_server, topic) == (0, 5)
    run = msgdel_delete(url, f"{topic}:0:1", "--yes", "--json")
    assert run.returncode == 0, run.stderr
    line = json.loads(run.stdout)
    assert (line["semantics"], line["outcome"], line["removed"]) == ("prefix", "deleted", 2)
    assert await client.log_range(kafka_server, topic) == (2, 5)

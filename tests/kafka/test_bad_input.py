"""The aiokafka adapter's options, given a wrong type or value, aiokafka's record given in
place of FastStream's message, and malformed Kafka addresses, URLs and clients for
`delete_at`: each is refused at once, before anything is sent, saying what to pass."""

from __future__ import annotations

import math

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord

import msgdel
from msgdel import AdapterNotFound, UnsupportedDeletion
from msgdel.adapters.kafka import KafkaAdapter
from msgdel.address import KafkaOffset
from tests.bad_input import Refused, check, rows


def record() -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("orders", 0, 1, 0, 0, None, b"1", None, 1, 0, [])


ORDER = [KafkaOffset("orders", 0, 41)]


def unstarted_admin() -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(bootstrap_servers="127.0.0.1:1")


@rows(
    Refused(
        "strategy-unknown",
        lambda: KafkaAdapter("delete"),
        ValueError,
        ("'truncate' or 'tombstone'",),
    ),
    Refused(
        "protect-groups-a-string",
        lambda: KafkaAdapter(protect_groups="no"),
        TypeError,
        ("True or False",),
    ),
    Refused("timeout-zero", lambda: KafkaAdapter(timeout=0), ValueError, ("> 0",)),
    Refused("timeout-nan", lambda: KafkaAdapter(timeout=math.nan), ValueError, ("finite",)),
    Refused("timeout-infinite", lambda: KafkaAdapter(timeout=math.inf), ValueError, ("finite",)),
    Refused(
        "the-aiokafka-record",
        lambda: msgdel.delete(record()),
        AdapterNotFound,
        ("broker client's own message", "msg: "),
    ),
    Refused("address-negative-offset", lambda: KafkaOffset("orders", 0, -1), ValueError,
            ("KafkaOffset.offset", ">= 0")),
    Refused("address-partition-a-string", lambda: KafkaOffset("orders", "0", 1), TypeError,
            ("KafkaOffset.partition", "int")),
    Refused("address-topic-with-a-space", lambda: KafkaOffset("my orders", 0, 1), ValueError,
            ("Kafka topic name", "'my orders'")),
    Refused("address-text-without-a-partition", lambda: KafkaOffset.parse("orders:41"),
            ValueError, ("TOPIC:PARTITION:OFFSET",)),
    Refused("address-text-offset-not-a-number", lambda: KafkaOffset.parse("orders:0:last"),
            ValueError, ("offset 'last' is not a number",)),
    Refused("url-unknown-option", lambda: msgdel.delete_at(
                "kafka://me:hunter2@localhost:9092?acks=all", ORDER),
            ValueError, ("option 'acks' is unknown", "security_protocol"), secret="hunter2"),
    Refused("url-with-a-topic-as-path", lambda: msgdel.delete_at(
                "kafka://localhost:9092/orders", ORDER),
            ValueError, ("brokers only", "kafka://")),
    Refused("url-port-not-a-number", lambda: msgdel.delete_at("kafka://localhost:ninety", ORDER),
            ValueError, ("'localhost:ninety'", "port")),
    Refused("url-no-broker", lambda: msgdel.delete_at("kafka://", ORDER),
            ValueError, ("no broker",)),
    Refused("url-credentials-over-plaintext", lambda: KafkaAdapter().connect(
                "kafka://me:hunter2@localhost:9092?security_protocol=PLAINTEXT"),
            ValueError, ("SASL_PLAINTEXT or SASL_SSL",), secret="hunter2"),
    Refused("url-unknown-sasl-mechanism", lambda: KafkaAdapter().connect(
                "kafka://me:hunter2@localhost:9092?sasl_mechanism=GSSAPI"),
            ValueError, ("SCRAM-SHA-256", "'GSSAPI'"), secret="hunter2"),
    Refused("address-client-of-another-library", lambda: msgdel.delete_at(object(), ORDER),
            UnsupportedDeletion, ("aiokafka.admin.AIOKafkaAdminClient", "builtins.object")),
    Refused("address-admin-not-started", lambda: msgdel.delete_at(unstarted_admin(), ORDER),
            UnsupportedDeletion, ("await admin.start()",)),
    Refused("address-with-the-tombstone-strategy", lambda: msgdel.delete_at(
                object(), ORDER, adapter=KafkaAdapter("tombstone")),
            UnsupportedDeletion, ("not the key a tombstone needs", "strategy='truncate'")),
)  # fmt: skip
async def test_a_wrong_argument_is_refused_saying_what_to_pass(row: Refused) -> None:
    await check(row)

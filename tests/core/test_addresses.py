"""The typed addresses: checked when made, and written and parsed in one text form."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msgdel.address import (
    Address,
    JetStreamSequence,
    KafkaOffset,
    KvKey,
    RedisEntry,
    RetainedTopic,
)

_entry_ids = st.builds(lambda ms, seq: f"{ms}-{seq}", st.integers(0, 2**64 - 1),
                       st.integers(0, 2**64 - 1))  # fmt: skip
_token = st.from_regex(r"[-_A-Za-z0-9]{1,12}", fullmatch=True)
addresses = st.one_of(
    st.builds(RedisEntry, st.text(min_size=1).filter(lambda s: s.strip() == s), _entry_ids),
    st.builds(
        JetStreamSequence,
        st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True),
        st.integers(1, 2**63),
    ),
    st.builds(KvKey, _token, st.lists(_token, min_size=1, max_size=4).map(".".join)),
    st.builds(
        KafkaOffset,
        st.from_regex(r"[A-Za-z0-9._-]{1,40}", fullmatch=True),
        st.integers(0, 10_000),
        st.integers(0, 2**63),
    ),
    st.builds(RetainedTopic, st.text(min_size=1).filter(lambda s: not set(s) & {"+", "#", "\0"})),
)


@given(addresses)
def test_every_address_parses_back_from_its_text(address: Address) -> None:
    assert type(address).parse(str(address)) == address


@given(addresses)
def test_every_address_names_its_result_target_and_id(address: Address) -> None:
    assert address.target
    assert address.id
    assert address.broker in {"redis", "nats", "kafka", "mqtt"}


def test_a_redis_stream_key_may_hold_colons() -> None:
    assert RedisEntry.parse("app:orders:1700000000000-3") == RedisEntry(
        "app:orders", "1700000000000-3"
    )
    assert RedisEntry.parse("orders:1-0", group="billing").group == "billing"


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda: RedisEntry("orders", "1700000000000"), "such as '1700000000000-0'"),
        (lambda: RedisEntry("", "1-0"), "RedisEntry.stream must be a stream key"),
        (lambda: RedisEntry("orders", "1-0", group=""), "consumer group name"),
        (lambda: RedisEntry.parse("orders"), "write it as 'STREAM:1700000000000-0'"),
        (lambda: JetStreamSequence("ORDERS", 0), "JetStreamSequence.sequence must be >= 1"),
        (lambda: JetStreamSequence("orders.new", 1), "JetStream stream name"),
        (lambda: JetStreamSequence.parse("ORDERS:x"), "sequence 'x' is not a number"),
        (lambda: KvKey("bucket", ".key"), "KvKey.key must be a KV key"),
        (lambda: KvKey("my bucket", "key"), "KvKey.bucket must be a KV bucket name"),
        (lambda: KafkaOffset("orders", 0, -1), "KafkaOffset.offset must be >= 0, got -1"),
        (lambda: KafkaOffset("orders", -1, 0), "KafkaOffset.partition must be >= 0"),
        (lambda: KafkaOffset("a topic", 0, 0), "Kafka topic name"),
        (lambda: KafkaOffset.parse("orders:0"), "'TOPIC:PARTITION:OFFSET'"),
        (lambda: RetainedTopic("sensors/#"), "no wildcards"),
    ],
)
def test_a_malformed_address_is_refused_naming_the_bad_value(make: object, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda: KafkaOffset("orders", 0, True), "must be an int >= 0, got True"),
        (lambda: KafkaOffset("orders", "0", 1), "must be an int >= 0, got '0'"),
        (lambda: JetStreamSequence("ORDERS", 1.0), "must be an int >= 1"),
        (lambda: RedisEntry(b"orders", "1-0"), "must be a str"),
        (lambda: RedisEntry.parse(b"orders:1-0"), "takes a str"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_saying_the_type(make: object, says: str) -> None:
    with pytest.raises(TypeError) as caught:
        make()  # type: ignore[operator]
    assert says in str(caught.value)

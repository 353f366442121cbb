"""Erasure targets are checked when made, as addresses are: a bad name is refused before
anything is sent, naming what is expected (and never showing the person's identifier)."""

from __future__ import annotations

import pytest

from msgdel.erasure import JetStreamSubject, KafkaKey, RedisStreamField


def test_a_kafka_topic_that_cannot_exist_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(ValueError, match=r"KafkaKey.topic must be a Kafka topic name .*'a topic'"):
        KafkaKey("a topic", "u-42")


def test_a_jetstream_stream_name_is_checked_as_an_address_checks_it() -> None:
    with pytest.raises(
        ValueError, match=r"JetStreamSubject\.stream must be a JetStream stream name"
    ):
        JetStreamSubject("orders.new", "orders.u-42.>")


def test_an_empty_identifier_is_refused_without_showing_a_value() -> None:
    with pytest.raises(
        TypeError,
        match=r"RedisStreamField\.value must be a non-empty str or bytes, got an empty one",
    ):
        RedisStreamField("orders", "user", "")

"""Built-in adapters, one module per broker, each importing only its own client.

Nothing here is imported by `import msgdel`: the registry knows the built-ins by the
qualified names of FastStream's message classes and of msgdel's address classes
(`BUILTINS`), and imports an adapter module the first time one of them is resolved.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class BuiltinAdapter:
    """Where a built-in adapter lives, which extra installs its client, and the client's
    top-level module (present when the extra is installed)."""

    module: str
    factory: str
    extra: str
    client: str


_REDIS_STREAM = BuiltinAdapter("msgdel.adapters.redis", "RedisStreamAdapter", "redis", "redis")
_REDIS_LIST = BuiltinAdapter("msgdel.adapters.redis", "RedisListAdapter", "redis", "redis")
_REDIS_CHANNEL = BuiltinAdapter("msgdel.adapters.redis", "RedisChannelAdapter", "redis", "redis")
_RABBIT = BuiltinAdapter("msgdel.adapters.rabbit", "RabbitAdapter", "rabbit", "aio_pika")
_KAFKA = BuiltinAdapter("msgdel.adapters.kafka", "KafkaAdapter", "kafka", "aiokafka")
_CONFLUENT = BuiltinAdapter(
    "msgdel.adapters.confluent", "ConfluentAdapter", "confluent", "confluent_kafka"
)
_NATS_JS = BuiltinAdapter("msgdel.adapters.nats", "JetStreamAdapter", "nats", "nats")
_NATS_KV = BuiltinAdapter("msgdel.adapters.nats", "KeyValueAdapter", "nats", "nats")
_NATS_OBJ = BuiltinAdapter("msgdel.adapters.nats", "ObjectStoreAdapter", "nats", "nats")
_MQTT = BuiltinAdapter("msgdel.adapters.mqtt", "MQTTAdapter", "mqtt", "zmqtt")

BUILTINS: dict[str, BuiltinAdapter] = {
    "faststream.redis.message.RedisStreamMessage": _REDIS_STREAM,
    "faststream.redis.message.RedisBatchStreamMessage": _REDIS_STREAM,
    "faststream.redis.message.RedisListMessage": _REDIS_LIST,
    "faststream.redis.message.RedisBatchListMessage": _REDIS_LIST,
    "faststream.redis.message.RedisChannelMessage": _REDIS_CHANNEL,
    "faststream.rabbit.message.RabbitMessage": _RABBIT,
    "faststream.kafka.message.KafkaMessage": _KAFKA,
    "faststream.kafka.message.KafkaAckableMessage": _KAFKA,
    "faststream.confluent.message.KafkaMessage": _CONFLUENT,
    "faststream.nats.message.NatsMessage": _NATS_JS,
    "faststream.nats.message.NatsBatchMessage": _NATS_JS,
    "faststream.nats.message.NatsKvMessage": _NATS_KV,
    "faststream.nats.message.NatsObjMessage": _NATS_OBJ,
    "faststream.mqtt.message.MQTTMessage": _MQTT,
    # Addresses, for msgdel.delete_at: deleted with the same adapters as the messages.
    "msgdel.address.RedisEntry": _REDIS_STREAM,
    "msgdel.address.JetStreamSequence": _NATS_JS,
    "msgdel.address.KvKey": _NATS_KV,
    "msgdel.address.KafkaOffset": _KAFKA,
    "msgdel.address.RetainedTopic": _MQTT,
}
"""FastStream message class or [address][msgdel.address.Address] class (qualified name) -> the
built-in adapter that deletes it."""

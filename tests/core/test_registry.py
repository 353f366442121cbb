"""The registry: which adapter deletes which message class."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import msgdel
from msgdel import AdapterNotFound, MsgdelError, Registry, Semantics
from msgdel.adapters import BUILTINS
from tests.core.adapters import DictAdapter, Note, SpecialNote


def test_a_registered_type_resolves_to_its_adapter() -> None:
    registry = Registry(builtins=False)
    adapter = DictAdapter()
    registry.register(Note, adapter)
    assert registry.resolve(Note) is adapter


def test_a_subclass_resolves_to_its_closest_registered_ancestor() -> None:
    registry = Registry(builtins=False)
    base, special = DictAdapter(), DictAdapter()
    registry.register(Note, base)
    assert registry.resolve(SpecialNote) is base

    registry.register(SpecialNote, special)  # the cache is cleared by the change
    assert registry.resolve(SpecialNote) is special
    assert registry.resolve(Note) is base


def test_registering_a_type_twice_names_both_adapters() -> None:
    registry = Registry(builtins=False)
    registry.register(Note, DictAdapter(Semantics.EXACT))
    with pytest.raises(
        ValueError, match=r"DictAdapter\(EXACT\).*replace=True.*DictAdapter\(PREFIX\)"
    ):
        registry.register(Note, DictAdapter(Semantics.PREFIX))


def test_replace_true_swaps_the_adapter() -> None:
    registry = Registry(builtins=False)
    registry.register(Note, DictAdapter())
    second = DictAdapter()
    registry.register(Note, second, replace=True)
    assert registry.resolve(Note) is second


def test_unregister_forgets_the_type_and_clears_the_cache() -> None:
    registry = Registry(builtins=False)
    registry.register(Note, DictAdapter())
    registry.resolve(SpecialNote)
    registry.unregister(Note)
    with pytest.raises(AdapterNotFound):
        registry.resolve(SpecialNote)
    with pytest.raises(KeyError):
        registry.unregister(Note)


def test_registries_are_independent() -> None:
    one, two = Registry(builtins=False), Registry(builtins=False)
    one.register(Note, DictAdapter())
    with pytest.raises(AdapterNotFound):
        two.resolve(Note)


class Unknown:
    """A message class no adapter knows."""


def test_adapter_not_found_names_the_type_and_lists_the_registered_ones() -> None:
    registry = Registry(builtins=False)
    registry.register(Note, DictAdapter())
    with pytest.raises(AdapterNotFound) as caught:
        registry.resolve(Unknown)
    text = str(caught.value)
    assert "tests.core.test_registry.Unknown" in text
    assert "tests.core.adapters.Note" in text
    assert "msgdel.register(Unknown, adapter)" in text
    assert isinstance(caught.value, MsgdelError)


@pytest.mark.parametrize("body", [b"raw", "text", {"order": 1}, None])
def test_passing_a_decoded_body_explains_what_to_pass_instead(body: object) -> None:
    with pytest.raises(AdapterNotFound) as caught:
        Registry().resolve(type(body))
    text = str(caught.value)
    assert "not message bodies" in text
    assert "msg: RedisStreamMessage" in text
    assert "DeleteMiddleware" in text
    assert "msgdel.register(" not in text


def test_the_installed_builtins_are_listed_and_the_missing_extras_named() -> None:
    with pytest.raises(AdapterNotFound) as caught:
        Registry().resolve(int)
    text = str(caught.value)
    for name, builtin in BUILTINS.items():
        installed = importlib.util.find_spec(builtin.client) is not None
        assert (name in text) is installed, name
        assert (f"msgdel[{builtin.extra}]" in text) is not installed, builtin.extra


def test_a_faststream_class_the_registry_does_not_know_names_its_builtin_adapter() -> None:
    class StreamMessage:  # stands for a FastStream class: same qualified name
        pass

    StreamMessage.__module__ = "faststream.redis.message"
    StreamMessage.__qualname__ = StreamMessage.__name__ = "RedisStreamMessage"
    with pytest.raises(AdapterNotFound) as caught:
        Registry(builtins=False).resolve(StreamMessage)
    text = str(caught.value)
    assert "msgdel.adapters.redis.RedisStreamAdapter (extra 'redis')" in text
    assert "msgdel.register(RedisStreamMessage, RedisStreamAdapter())" in text


def test_an_object_that_is_not_an_adapter_is_refused_at_registration() -> None:
    with pytest.raises(TypeError, match="not a msgdel adapter"):
        Registry().register(Note, object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be a class"):
        Registry().register("Note", DictAdapter())  # type: ignore[arg-type]


def test_iteration_yields_type_and_adapter_pairs() -> None:
    registry = Registry(builtins=False)
    adapter = DictAdapter()
    registry.register(Note, adapter)
    assert list(registry) == [(Note, adapter)]


def test_module_level_register_acts_on_the_default_registry() -> None:
    adapter = DictAdapter()
    msgdel.register(Note, adapter)
    try:
        assert msgdel.default_registry.resolve(Note) is adapter
    finally:
        msgdel.unregister(Note)
    with pytest.raises(AdapterNotFound):
        msgdel.default_registry.resolve(Note)


def _install_distribution(site: Path, name: str, entry_point: str, module_source: str) -> None:
    """Write a minimal installed distribution (dist-info with entry points) onto ``site``."""
    dist_info = site / f"{name}-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(f"[msgdel.adapters]\n{name} = {entry_point}\n")
    module = entry_point.split(":")[0]
    (site / f"{module}.py").write_text(textwrap.dedent(module_source))


def test_entry_points_of_installed_distributions_register_their_adapters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_distribution(
        tmp_path,
        "msgdel_notes_plugin",
        "msgdel_notes_plugin:install",
        """
        from tests.core.adapters import DictAdapter, Note

        def install(registry):
            registry.register(Note, DictAdapter())
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry(builtins=False)

    assert "msgdel_notes_plugin" in registry.load_entry_points()
    assert isinstance(registry.resolve(Note), DictAdapter)
    sys.modules.pop("msgdel_notes_plugin", None)


def test_a_failing_entry_point_is_named_in_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_distribution(
        tmp_path,
        "msgdel_broken_plugin",
        "msgdel_broken_plugin:install",
        """
        def install(registry):
            raise RuntimeError("bad plugin")
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MsgdelError, match=r"msgdel_broken_plugin.*bad plugin"):
        Registry(builtins=False).load_entry_points()
    sys.modules.pop("msgdel_broken_plugin", None)


@pytest.mark.parametrize(
    ("extra", "client"),
    [
        ("redis", "redis"),
        ("rabbit", "aio_pika"),
        ("kafka", "aiokafka"),
        ("confluent", "confluent_kafka"),
        ("nats", "nats"),
        ("mqtt", "zmqtt"),
    ],
)
def test_an_adapter_imported_without_its_client_names_the_extra_to_install(
    extra: str, client: str
) -> None:
    code = textwrap.dedent(f"""
        import sys
        sys.modules[{client!r}] = None  # as if the client were not installed
        try:
            import msgdel.adapters.{extra}
        except ImportError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert f"pip install 'msgdel[{extra}]'" in out.stdout


def test_an_adapter_registered_for_a_class_wins_over_a_builtin_of_its_subclass() -> None:
    from faststream.message import StreamMessage

    class Ackable(StreamMessage[bytes]):  # stands for KafkaAckableMessage, a built-in subclass
        pass

    Ackable.__module__ = "faststream.kafka.message"
    Ackable.__qualname__ = Ackable.__name__ = "KafkaAckableMessage"
    registry = Registry()
    mine = DictAdapter()
    registry.register(StreamMessage, mine)
    assert registry.resolve(Ackable) is mine

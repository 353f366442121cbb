"""The Python code of the docs, and the one table of which test runs each piece of it.

Every ```python and ```pycon block of README.md and docs/**/*.md is listed in :data:`TABLE`:
its page, a key that picks it out on that page (the file it includes with pymdownx
snippets' ``--8<-- "path"``, or a piece of its text), and the test that runs it as written.
``tests/core/test_docs.py`` fails when a page has a block the table does not list, when the
table lists a block the page no longer has, and when the test it names does not exist; a
block marked ``pending`` is reported as an expected failure, with what it still needs.

The helpers here give the backends' ``test_docs.py`` the code to run: the text of a block,
compiled as it stands on the page (top-level ``await`` allowed, as in ``python -m asyncio``),
and an example file loaded as a module.
"""

from __future__ import annotations

import ast
import doctest
import importlib.util
import inspect
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs

ROOT = Path(__file__).resolve().parents[1]

LANGUAGES = ("python", "pycon")
"""The fences whose code must run: Python, and interactive sessions (run as doctests)."""

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<language>[\w+-]*)")
_INCLUDE = re.compile(r'^--8<--[ \t]+"(?P<path>[^"]+)"$')


@attrs.frozen
class Block:
    """One fenced code block of a page."""

    page: str
    """The page, relative to the repository root (``docs/batching.md``)."""
    line: int
    """The page's line number of the block's first line of code."""
    language: str
    text: str
    """The block's code, without the indentation of its fence."""

    @property
    def include(self) -> str | None:
        """The file the block includes with ``--8<-- "path"``, if that is all it holds."""
        found = _INCLUDE.match(self.text.strip())
        return found["path"] if found else None

    def code(self) -> Any:
        """The block compiled as a module that may ``await`` at top level; exec or eval it
        (:func:`run`). Tracebacks name the page and its line numbers."""
        source = "\n" * (self.line - 1) + self.text
        return compile(source, self.page, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


@attrs.frozen
class Entry:
    """One row of the table: which block, and what runs it."""

    page: str
    key: str
    """The path the block includes, or a piece of text only that block of the page has."""
    test: str = ""
    """``path::name`` of the test (function or class) that runs the block."""
    pending: str = ""
    """Why no test runs the block yet, and what it needs; the check reports it as xfail."""

    def matches(self, block: Block) -> bool:
        return block.page == self.page and (
            block.include == self.key if block.include else self.key in block.text
        )

    @property
    def id(self) -> str:
        return f"{self.page}::{self.key.splitlines()[0][:48]}"


def pages() -> list[str]:
    """README.md and every page under docs/, relative to the repository root."""
    docs = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").rglob("*.md"))
    return ["README.md", *docs]


def blocks(page: str, languages: tuple[str, ...] = LANGUAGES) -> list[Block]:
    """The fenced blocks of ``page`` in ``languages``, in order (fences nested in list
    items and admonitions included; a fence inside another block is that block's text)."""
    found: list[Block] = []
    lines = (ROOT / page).read_text().splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        index += 1
        if opening is None:
            continue
        indent, fence = opening["indent"], opening["fence"]
        start = index
        while index < len(lines) and not (
            lines[index].startswith(indent)
            and lines[index][len(indent) :].rstrip() in (fence, fence[0] * len(fence))
        ):
            index += 1
        body = [line[len(indent) :] if line.startswith(indent) else line.lstrip()
                for line in lines[start:index]]  # fmt: skip
        index += 1  # the closing fence
        if opening["language"] in languages:
            found.append(Block(page, start + 1, opening["language"], "\n".join(body) + "\n"))
    return found


def block(page: str, key: str) -> Block:
    """The one block of ``page`` that :data:`TABLE`'s ``key`` picks out."""
    (entry,) = (e for e in TABLE if e.page == page and e.key == key)
    matching = [b for b in blocks(page) if entry.matches(b)]
    assert len(matching) == 1, f"{entry.id}: {len(matching)} blocks match, not one"
    return matching[0]


async def run(code: Any, namespace: dict[str, Any]) -> dict[str, Any]:
    """Execute code compiled by :meth:`Block.code` in ``namespace`` (awaiting its top-level
    ``await``s) and return the namespace: the names the block bound are in it."""
    namespace.setdefault("__name__", "docs_block")
    done = eval(code, namespace)
    if inspect.isawaitable(done):
        await done
    return namespace


async def check_session(session: Block, namespace: dict[str, Any]) -> None:
    """Run a ``pycon`` block's statements in ``namespace``: each one's value must print as the
    page shows it (whitespace and line breaks aside, as doctest's NORMALIZE_WHITESPACE)."""
    checker = doctest.OutputChecker()
    for example in doctest.DocTestParser().get_examples(session.text):
        source = "\n" * (session.line - 1 + example.lineno) + example.source
        try:
            code = compile(source, session.page, "eval", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        except SyntaxError:  # a statement: nothing to print
            await run(compile(source, session.page, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT),
                      namespace)  # fmt: skip
            got = ""
        else:
            value = eval(code, namespace)
            if inspect.isawaitable(value):
                value = await value
            got = "" if value is None else repr(value) + "\n"
        assert checker.check_output(example.want, got, doctest.NORMALIZE_WHITESPACE), (
            f"{session.page}:{session.line + example.lineno}: {example.source.strip()}\n"
            f"page shows: {example.want}got:        {got}"
        )


_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ")


def printed(output: str) -> list[str]:
    """The lines of ``output`` a program printed, FastStream's log lines (on stdout, each
    starting with its time) left out."""
    return [line for line in output.splitlines() if not _LOG_LINE.match(line)]


@contextmanager
def example(path: str) -> Iterator[ModuleType]:
    """The example file ``path`` (from the repository root) imported as a module of its own,
    as ``faststream run`` imports an app; it is forgotten again afterwards."""
    name = "docs_example_" + re.sub(r"\W", "_", path)
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    assert spec is not None, path
    assert spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]


# -- the table -------------------------------------------------------------------------------
CORE = "tests/core/test_docs.py"
REDIS = "tests/redis/test_docs.py"
RABBIT = "tests/rabbit/test_docs.py"
KAFKA = "tests/kafka/test_docs.py"
NATS = "tests/nats/test_docs.py"
MQTT = "tests/mqtt/test_docs.py"
OUTBOX = "examples/msgdel-sqlite-outbox/tests/test_conformance.py"  # tox's core envs run it

# fmt: off
TABLE: tuple[Entry, ...] = (
    # README.md: rendered by code hosts and PyPI too, where nothing is included, so its
    # blocks are inline and the tests run their text.
    Entry("README.md", "result = await msgdel.delete(msg)",
          f"{REDIS}::test_the_first_lines_delete_inside_a_real_handler"),
    Entry("README.md", ">>> await msgdel.delete(msg)",
          f"{REDIS}::test_the_printed_result_is_what_delete_returns_inside_a_handler"),
    Entry("README.md", "async def fulfil(order: dict[str, str], msg: RedisStreamMessage)",
          f"{REDIS}::test_the_quick_start_handler_deletes_every_order"),
    Entry("README.md", "DeleteMiddleware(batcher=batcher)",
          f"{REDIS}::test_the_readme_middleware_deletes_and_closes_the_batcher_on_shutdown"),
    # docs/index.md
    Entry("docs/index.md", "result = await msgdel.delete(msg)",
          f"{REDIS}::test_the_first_lines_delete_inside_a_real_handler"),
    Entry("docs/index.md", "examples/orders.py",
          f"{REDIS}::test_the_orders_example_ships_and_deletes_every_order"),
    # docs/contract.md
    Entry("docs/contract.md", "# writing an adapter",
          f"{CORE}::test_the_contract_lists_every_public_name_with_its_signature"),
    Entry("docs/contract.md", "retry = [m for m, o in zip(msgs, outcomes)",
          f"{REDIS}::test_the_retry_fragment_picks_the_messages_that_failed_retryably"),
    Entry("docs/contract.md", "require=Semantics.EXACT)  # UnsupportedDeletion",
          f"{KAFKA}::test_requiring_exact_refuses_a_kafka_message_before_any_request"),
    Entry("docs/contract.md", "def audit(report: msgdel.DeletionReport)",
          f"{CORE}::test_the_audit_observer_prints_every_deletion"),
    # docs/registry.md
    Entry("docs/registry.md", "async def close_msgdel()",
          f"{REDIS}::test_closing_the_registry_on_shutdown_releases_its_adapters"),
    Entry("docs/registry.md", "docs/examples/custom_adapter.py",
          f"{CORE}::test_the_custom_adapter_example_runs"),
    Entry("docs/registry.md", "# my_package/msgdel_plugin.py",
          f"{CORE}::test_the_plugin_module_registers_the_adapter_through_its_entry_point"),
    # docs/conformance.md: the example adapter's files, which its own suite runs
    Entry("docs/conformance.md", "examples/msgdel-sqlite-outbox/msgdel_sqlite_outbox/__init__.py",
          f"{OUTBOX}::TestSqliteOutboxAdapter"),
    Entry("docs/conformance.md", "examples/msgdel-sqlite-outbox/tests/test_conformance.py",
          f"{OUTBOX}::TestSqliteOutboxAdapter"),
    # docs/batching.md
    Entry("docs/batching.md", "docs/examples/middleware.py",
          f"{REDIS}::test_the_middleware_example_deletes_every_order_by_the_time_it_stopped"),
    Entry("docs/batching.md", "docs/examples/deleter.py",
          f"{REDIS}::test_the_deleter_example_deletes_only_the_poison_order"),
    Entry("docs/batching.md", "async with msgdel.Batcher(",
          f"{REDIS}::test_the_batcher_fragment_deletes_both_messages_inside_a_real_handler"),
    # docs/testing.md
    Entry("docs/testing.md", "docs/examples/record_deletions.py",
          f"{REDIS}::test_the_record_deletions_example_runs"),
    Entry("docs/testing.md", "docs/examples/test_deleted_orders.py",
          f"{REDIS}::test_the_pytest_example_passes_with_pytest_asyncio_in_its_default_mode"),
    # docs/adapters/rabbit.md
    Entry("docs/adapters/rabbit.md", "docs/examples/rabbit_delete.py",
          f"{RABBIT}::test_the_example_deletes_the_order_it_handled"),
    Entry("docs/adapters/rabbit.md", "docs/examples/rabbit_manual.py",
          f"{RABBIT}::test_the_manual_example_deletes_debug_messages_and_leaves_the_rest"),
    Entry("docs/adapters/rabbit.md", "docs/examples/rabbit_dead_letter.py",
          f"{RABBIT}::test_the_dead_letter_example_hands_the_deleted_order_to_the_dlx"),
    # docs/adapters/mqtt.md
    Entry("docs/adapters/mqtt.md", "docs/examples/mqtt_retained.py",
          f"{MQTT}::test_the_example_clears_the_retained_config_it_handled"),
    Entry("docs/adapters/mqtt.md", "docs/examples/mqtt_outside_handler.py",
          f"{MQTT}::test_the_outside_a_handler_example_clears_the_retained_message"),
    # docs/addresses.md
    Entry("docs/addresses.md", "docs/examples/delete_by_address.py",
          f"{REDIS}::test_the_delete_by_address_example_deletes_two_entries_and_keeps_the_third"),
    # docs/adapters/redis.md: its includes are the tested examples
    Entry("docs/adapters/redis.md", "examples/orders.py",
          f"{REDIS}::test_the_orders_example_ships_and_deletes_every_order"),
    Entry("docs/adapters/redis.md", "docs/examples/redis_other_groups.py",
          f"{REDIS}::test_the_other_groups_example_deletes_an_entry_another_group_still_needs"),
    Entry("docs/adapters/redis.md", "docs/examples/redis_match_fields.py",
          f"{REDIS}::test_the_match_fields_example_keeps_another_order_under_a_replayed_id"),
    # docs/adapters/kafka.md
    Entry("docs/adapters/kafka.md", "docs/examples/kafka_truncate.py",
          f"{KAFKA}::test_the_example_truncates_the_partition_up_to_each_order_it_handled"),
    Entry("docs/adapters/kafka.md", 'KafkaAdapter("tombstone")',
          f"{KAFKA}::test_the_tombstone_block_tombstones_a_keyed_record_on_a_compacted_topic"),
    # docs/adapters/nats.md
    Entry("docs/adapters/nats.md", "docs/examples/nats_jetstream.py",
          f"{NATS}::test_the_example_deletes_each_order_it_handled_from_the_stream"),
    Entry("docs/adapters/nats.md", "erasing = JetStreamAdapter(erase=True)",
          f"{NATS}::test_the_erase_registration_overwrites_the_payload_a_handler_deletes"),
    Entry("docs/adapters/nats.md", "docs/examples/nats_kv_outside_handler.py",
          f"{NATS}::test_the_outside_a_handler_example_purges_the_key_and_deletes_the_object"),
    # docs/observability.md
    Entry("docs/observability.md", "docs/examples/prometheus_metrics.py",
          f"{REDIS}::test_the_prometheus_example_serves_the_deletions_it_counted"),
    Entry("docs/observability.md", "docs/examples/prometheus_middleware.py",
          f"{REDIS}::test_the_middleware_metrics_example_counts_in_its_own_registry"),
    Entry("docs/observability.md", "msgdel.otel.instrument()   #",
          f"{REDIS}::test_instrumenting_otel_makes_a_span_of_a_deletion_in_a_handler"),
    Entry("docs/observability.md", "docs/examples/otel_tracing.py",
          f"{REDIS}::test_the_tracing_example_joins_the_deletion_to_the_message_trace"),
    Entry("docs/observability.md", 'logging.getLogger("msgdel").setLevel(logging.DEBUG)',
          f"{REDIS}::test_the_logging_line_logs_one_debug_line_per_deletion"),
)
# fmt: on
"""Every Python block of the docs: page, key, and the test that runs it (or why none yet)."""

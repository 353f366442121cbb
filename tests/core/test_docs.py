"""Every Python block of the docs runs as written: the table says which test runs each one.

The collecting specs check tests/docs_blocks.py's table against the pages; the others run the
blocks that need no broker (the backends' ``tests/<backend>/test_docs.py`` run the rest).
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import msgdel
from msgdel import Outcome
from tests.core.adapters import DictAdapter, Note
from tests.docs_blocks import ROOT, TABLE, Entry, block, blocks, pages, run

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest itself depends on tomli before Python 3.11
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]


# -- the table covers every block, and names a test that exists ------------------------------
@pytest.mark.parametrize("page", pages())
def test_every_python_block_of_the_page_is_in_the_table(page: str) -> None:
    found = blocks(page)
    entries = [e for e in TABLE if e.page == page]
    uncovered = [b for b in found if not any(e.matches(b) for e in entries)]
    stale = [e for e in entries if sum(e.matches(b) for b in found) != 1]
    assert not uncovered, "blocks no test runs; add them to tests/docs_blocks.py's TABLE:\n" + (
        "\n".join(f"{b.page}:{b.line}: {b.text.splitlines()[0]}" for b in uncovered)
    )
    assert not stale, "table entries that match no block, or several, on the page:\n" + (
        "\n".join(e.id for e in stale)
    )


def test_the_table_names_only_pages_that_exist_and_each_block_once() -> None:
    assert {e.page for e in TABLE} <= set(pages())
    keys = [(e.page, e.key) for e in TABLE]
    assert len(keys) == len(set(keys))


def _defined_at_top_level(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {node.name for node in tree.body if isinstance(node, kinds)}


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(
            e,
            id=e.id,
            marks=[pytest.mark.xfail(reason=f"pending: {e.pending}", strict=False)]
            if e.pending
            else [],
        )
        for e in TABLE
    ],
)
def test_each_block_is_run_by_a_test_that_exists(entry: Entry) -> None:
    assert not entry.pending, f"pending: {entry.pending}"
    path, _, name = entry.test.partition("::")
    assert (ROOT / path).is_file(), f"{entry.id}: no test file {path}"
    assert name in _defined_at_top_level(ROOT / path), f"{entry.id}: {path} has no {name}"


def test_every_included_example_exists() -> None:
    included = {b.include for page in pages() for b in blocks(page) if b.include}
    assert included, "no page includes an example file"
    assert [path for path in sorted(included) if not (ROOT / path).is_file()] == []


# -- the blocks that need no broker ----------------------------------------------------------
def _signature_as_documented(function: object) -> str:
    """``name(a, *, b=None)``: the signature without its annotations."""
    parts: list[str] = []
    star = False
    for p in inspect.signature(function).parameters.values():  # type: ignore[arg-type]
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        parts.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return f"{function.__name__}({', '.join(parts)})"  # type: ignore[attr-defined]


async def test_the_contract_lists_every_public_name_with_its_signature() -> None:
    listing = block("docs/contract.md", "# writing an adapter")
    await run(listing.code(), {})  # every name it shows exists
    tree = ast.parse(listing.text)
    shown = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "msgdel"
    }
    assert shown == set(msgdel.__all__)
    comments = " ".join(
        re.sub(r"\s+", " ", line.partition("#")[2]) for line in listing.text.splitlines()
    )
    comments = re.sub(r"\(\s+", "(", re.sub(r",\s+", ", ", comments))
    for function in (msgdel.delete, msgdel.delete_many, msgdel.register, msgdel.unregister):
        assert _signature_as_documented(function) in comments


@pytest.fixture
def notes_on_the_default_registry() -> Iterator[DictAdapter]:
    """An in-memory adapter for :class:`Note` on the default registry, for the test only."""
    adapter = DictAdapter(a=b"1")
    msgdel.register(Note, adapter)
    try:
        yield adapter
    finally:
        msgdel.unregister(Note)


async def test_the_audit_observer_prints_every_deletion(
    notes_on_the_default_registry: DictAdapter, capsys: pytest.CaptureFixture[str]
) -> None:
    observer = block("docs/contract.md", "def audit(report: msgdel.DeletionReport)")
    namespace = await run(observer.code(), {})
    try:
        await msgdel.delete(Note("a"))
        await msgdel.delete(Note("a"))
    finally:
        msgdel.default_registry.remove_observer(namespace["audit"])
    await msgdel.delete(Note("a"))  # no longer observed
    assert capsys.readouterr().out.splitlines() == [
        "dict: deleted ('a',) in notes",
        "dict: already_gone ('a',) in notes",
    ]


def test_the_custom_adapter_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(ROOT / "docs/examples/custom_adapter.py"), run_name="__main__")
    assert capsys.readouterr().out == (
        "a: deleted, a again: already_gone, b: deleted, no key: NotDeletable\n"
    )


def test_the_plugin_module_registers_the_adapter_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's plugin module and pyproject.toml entry point, installed as a distribution
    whose ``my_package.audit`` is the custom adapter example: a registry loads it."""
    package = tmp_path / "my_package"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "audit.py").write_text((ROOT / "docs/examples/custom_adapter.py").read_text())
    plugin = block("docs/registry.md", "# my_package/msgdel_plugin.py")
    (package / "msgdel_plugin.py").write_text(plugin.text)
    (toml,) = (b for b in blocks("docs/registry.md", ("toml",)) if "msgdel.adapters" in b.text)
    declared = tomllib.loads(toml.text)["project"]["entry-points"]["msgdel.adapters"]
    dist_info = tmp_path / "my_package-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-package\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[msgdel.adapters]\n" + "".join(f"{n} = {v}\n" for n, v in declared.items())
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        registry = msgdel.Registry(builtins=False)
        assert "audit" in registry.load_entry_points()
        from my_package.audit import (  # type: ignore[import-not-found]
            AuditedMessage,
            AuditStoreAdapter,
        )

        assert isinstance(registry.resolve(AuditedMessage), AuditStoreAdapter)
        result = asyncio.run(msgdel.delete(AuditedMessage("a"), registry=registry))
        assert result.outcome is Outcome.DELETED
    finally:
        for name in [n for n in sys.modules if n == "my_package" or n.startswith("my_package.")]:
            del sys.modules[name]

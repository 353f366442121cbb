"""The API reference (docs/reference/) renders every public name: a name added to msgdel's
`__all__` or a built-in adapter added to the registry needs its entry there too."""

from __future__ import annotations

import re
from pathlib import Path

import msgdel
from msgdel.adapters import BUILTINS

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference"


def _directives(page: str) -> set[str]:
    return set(re.findall(r"^::: ([\w.]+)$", (REFERENCE / page).read_text(), re.MULTILINE))


def test_the_msgdel_page_lists_every_name_of_msgdel_all_and_nothing_else() -> None:
    text = (REFERENCE / "index.md").read_text()
    members = re.findall(r"^        - (\w+)$", text, re.MULTILINE)
    assert "msgdel" in _directives("index.md")
    assert sorted(members) == sorted(msgdel.__all__)
    assert len(members) == len(set(members))


def test_the_adapters_page_renders_every_built_in_adapter_class() -> None:
    built_in = {f"{b.module}.{b.factory}" for b in BUILTINS.values()}
    assert built_in <= _directives("adapters.md")

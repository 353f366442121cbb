"""The examples in the docs run as written."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def runnable_blocks(page: str) -> list[str]:
    """The page's Python blocks that define ``async def main()``."""
    text = (DOCS / page).read_text()
    return [block for block in BLOCK.findall(text) if "async def main()" in block]


def test_the_custom_adapter_example_runs() -> None:
    (block,) = runnable_blocks("registry.md")
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(block, "docs/registry.md", "exec"), namespace)
    asyncio.run(namespace["main"]())

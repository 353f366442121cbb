"""pytest plugin of msgdel: the `msgdel_deletions` fixture.

Installed through the `pytest11` entry point, so a project that depends on msgdel gets the
fixture without configuration:

```python
async def test_orders_are_deleted(msgdel_deletions):
    async with TestRedisBroker(broker) as br:
        await br.publish("hello", stream="orders")
    assert msgdel_deletions.bodies == [b"hello"]
```
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from msgdel.testing import Deletions, record_deletions


@pytest.fixture
def msgdel_deletions() -> Iterator[Deletions]:
    """The deletions asked for during the test, through msgdel's default registry."""
    with record_deletions() as deletions:
        yield deletions

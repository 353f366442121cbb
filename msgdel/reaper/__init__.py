"""Dead letters: find the messages no handler will ever finish, and delete them, or copy them
to a dead-letter destination first, never losing one between the two steps.

```python
from msgdel.reaper import Policy, RedisReaper

reaper = RedisReaper(client, stream="orders", group="billing",
                     policy=Policy(min_deliveries=5, dead_letter="orders:dead"))
report = await reaper.sweep()          # once
async with reaper:                     # or every `interval` seconds, in the background
    ...
```

`RedisReaper` needs the `redis` extra and `JetStreamReaper` the `nats` extra; each is
imported on first use, so `import msgdel.reaper` imports no broker client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from msgdel.reaper._base import Policy, SweepReport

if TYPE_CHECKING:
    from msgdel.reaper._nats import JetStreamReaper
    from msgdel.reaper._redis import RedisReaper

__all__ = ["JetStreamReaper", "Policy", "RedisReaper", "SweepReport"]

_LAZY = {
    "RedisReaper": "msgdel.reaper._redis",
    "JetStreamReaper": "msgdel.reaper._nats",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'msgdel.reaper' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)

"""Delete consumed FastStream messages at their broker with one call, whatever the broker.

```python
result = await msgdel.delete(msg)
results = await msgdel.delete_many(msgs)
results = await msgdel.delete_at("redis://localhost", [RedisEntry("orders", "1-0")])
```
"""

from msgdel.api import delete, delete_at, delete_many
from msgdel.batcher import Batcher
from msgdel.errors import (
    AdapterNotFound,
    DeletionFailed,
    MsgdelError,
    NotDeletable,
    UnsupportedDeletion,
)
from msgdel.features import Features
from msgdel.observe import DeletionReport, Observer
from msgdel.protocol import AddressDeletable, BaseAdapter, Deletable
from msgdel.registry import Registry, default_registry, register, unregister
from msgdel.result import DeleteResult
from msgdel.semantics import Outcome, Semantics

__version__ = "0.1.0"

__all__ = [
    "AdapterNotFound",
    "AddressDeletable",
    "BaseAdapter",
    "Batcher",
    "Deletable",
    "DeleteResult",
    "DeletionFailed",
    "DeletionReport",
    "Features",
    "MsgdelError",
    "NotDeletable",
    "Observer",
    "Outcome",
    "Registry",
    "Semantics",
    "UnsupportedDeletion",
    "default_registry",
    "delete",
    "delete_at",
    "delete_many",
    "register",
    "unregister",
]

"""Every public argument of the core, given a wrong type or value, and hostile objects given in
place of messages and adapters: each is refused at once with an error that says what to pass,
and nothing reaches the adapter (so nothing reaches a broker)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

import msgdel
from msgdel import (
    AdapterNotFound,
    Batcher,
    DeleteResult,
    Features,
    Outcome,
    Registry,
    Semantics,
)
from msgdel.faststream import DeleteMiddleware
from tests.bad_input import Refused, check, rows
from tests.core.adapters import DictAdapter, Note

ADAPTER = DictAdapter(k=b"1")
REGISTRY = Registry(builtins=False)
REGISTRY.register(Note, ADAPTER)
NOTE = Note("k")


@pytest.fixture(autouse=True)
def untouched() -> Iterator[None]:
    """After every row: the adapter was never called and its message is still stored."""
    ADAPTER.calls.clear()
    yield
    assert ADAPTER.calls == []
    assert ADAPTER.store == {"k": b"1"}


def delete(message: Any, **options: Any) -> Any:
    return msgdel.delete(message, registry=REGISTRY, **options)


def delete_many(messages: Any, **options: Any) -> Any:
    return msgdel.delete_many(messages, registry=REGISTRY, **options)


async def submit_to_closed_batcher() -> None:
    batcher = Batcher(REGISTRY)
    await batcher.close()
    await batcher.submit(NOTE)


async def submit(message: Any) -> None:
    batcher = Batcher(REGISTRY)
    try:
        await batcher.submit(message)
    finally:
        await batcher.close()


class Sync:
    """Has the methods of an adapter, but they are not coroutines."""

    features = Features("sync", Semantics.EXACT)

    def delete(self, message: Any) -> None: ...

    def delete_many(self, messages: Any) -> None: ...

    def aclose(self) -> None: ...


NOT_MESSAGE = ("deletes FastStream message objects, not message bodies", "registered message types")
"""What every error about a non-message says: what msgdel deletes, and what it knows."""

CALLS = rows(
    # msgdel.delete: what is passed instead of a message
    Refused("delete-a-decoded-body", lambda: delete(b"order 1"), AdapterNotFound, NOT_MESSAGE),
    Refused("delete-a-text-body", lambda: delete("order 1"), AdapterNotFound, NOT_MESSAGE),
    Refused("delete-a-decoded-json", lambda: delete({"id": 1}), AdapterNotFound, NOT_MESSAGE),
    Refused("delete-none", lambda: delete(None), AdapterNotFound, NOT_MESSAGE),
    Refused("delete-a-number", lambda: delete(42), AdapterNotFound, NOT_MESSAGE),
    Refused("delete-a-class", lambda: delete(Note), AdapterNotFound, ("not its class",)),
    # msgdel.delete: its options
    Refused(
        "delete-require-a-string",
        lambda: delete(NOTE, require="EXACT"),
        TypeError,
        ("msgdel.Semantics.EXACT",),
    ),
    Refused("delete-require-a-number", lambda: delete(NOTE, require=1), TypeError, ("Semantics",)),
    Refused(
        "delete-registry-a-string",
        lambda: msgdel.delete(NOTE, registry="default"),  # type: ignore[arg-type]
        TypeError,
        ("msgdel.Registry or None",),
    ),
    # msgdel.delete_many: what is passed instead of an iterable of messages
    Refused("delete-many-one-message", lambda: delete_many(NOTE), TypeError, ("msgdel.delete(",)),
    Refused("delete-many-a-string", lambda: delete_many("abc"), TypeError, ("msgdel.delete(",)),
    Refused("delete-many-bytes", lambda: delete_many(b"abc"), TypeError, ("msgdel.delete(",)),
    Refused("delete-many-none", lambda: delete_many(None), TypeError, ("iterable",)),
    Refused("delete-many-a-mapping", lambda: delete_many({"a": NOTE}), TypeError, (".values()",)),
    Refused(
        "delete-many-a-body-among-messages",
        lambda: delete_many([NOTE, b"order 2"]),
        AdapterNotFound,
        NOT_MESSAGE,
    ),
    Refused(
        "delete-many-return-exceptions-a-string",
        lambda: delete_many([NOTE], return_exceptions="yes"),
        TypeError,
        ("True or False",),
    ),
    Refused(
        "delete-many-require-a-string",
        lambda: delete_many([NOTE], require="prefix"),
        TypeError,
        ("msgdel.Semantics.PREFIX",),
    ),
    # Batcher
    Refused("batcher-max-size-zero", lambda: Batcher(max_size=0), ValueError, ("integer >= 1",)),
    Refused("batcher-max-size-float", lambda: Batcher(max_size=1.5), ValueError, ("integer",)),
    Refused("batcher-max-size-bool", lambda: Batcher(max_size=True), ValueError, ("integer",)),
    Refused("batcher-max-pending-zero", lambda: Batcher(max_pending=0), ValueError, (">= 1",)),
    Refused(
        "batcher-max-pending-a-string", lambda: Batcher(max_pending="10"), ValueError, ("integer",)
    ),
    Refused("batcher-retries-negative", lambda: Batcher(retries=-1), ValueError, (">= 0",)),
    Refused("batcher-max-delay-negative", lambda: Batcher(max_delay=-1), ValueError, ("seconds",)),
    Refused("batcher-max-delay-a-string", lambda: Batcher(max_delay="1"), ValueError, ("number",)),
    Refused("batcher-max-delay-nan", lambda: Batcher(max_delay=math.nan), ValueError, ("finite",)),
    Refused(
        "batcher-max-delay-infinite", lambda: Batcher(max_delay=math.inf), ValueError, ("finite",)
    ),
    Refused("batcher-backoff-nan", lambda: Batcher(backoff=math.nan), ValueError, ("finite",)),
    Refused(
        "batcher-max-backoff-infinite",
        lambda: Batcher(max_backoff=math.inf),
        ValueError,
        ("finite",),
    ),
    Refused(
        "batcher-registry-a-string", lambda: Batcher("default"), TypeError, ("msgdel.Registry",)
    ),
    Refused(
        "batcher-require-a-string",
        lambda: Batcher(require="EXACT"),
        TypeError,
        ("msgdel.Semantics.EXACT",),
    ),
    Refused(
        "batcher-submit-after-close",
        submit_to_closed_batcher,
        RuntimeError,
        ("closed", "create a new one"),
    ),
    Refused("batcher-submit-a-body", lambda: submit(b"order 1"), AdapterNotFound, NOT_MESSAGE),
    # DeleteMiddleware
    Refused(
        "middleware-when-unknown",
        lambda: DeleteMiddleware("sometimes"),
        ValueError,
        ("'success'", "'always'"),
    ),
    Refused(
        "middleware-on-error-unknown",
        lambda: DeleteMiddleware(on_error="ignore"),
        ValueError,
        ("'log' or 'raise'",),
    ),
    Refused(
        "middleware-batcher-a-string",
        lambda: DeleteMiddleware(batcher="yes"),
        TypeError,
        ("msgdel.Batcher or None",),
    ),
    Refused(
        "middleware-registry-a-string",
        lambda: DeleteMiddleware(registry="default"),
        TypeError,
        ("msgdel.Registry or None",),
    ),
    Refused(
        "middleware-two-registries",
        lambda: DeleteMiddleware(batcher=Batcher(), registry=REGISTRY),
        ValueError,
        ("Batcher(registry)",),
    ),
    Refused(
        "middleware-leave-ack-a-string",
        lambda: DeleteMiddleware(batcher=Batcher(), leave_ack_to_batch="yes"),
        TypeError,
        ("True or False",),
    ),
    Refused(
        "middleware-leave-ack-without-batcher",
        lambda: DeleteMiddleware(leave_ack_to_batch=True),
        ValueError,
        ("needs a batcher",),
    ),
    Refused(
        "middleware-require-a-string",
        lambda: DeleteMiddleware(require="EXACT"),
        TypeError,
        ("msgdel.Semantics.EXACT",),
    ),
    # Registry
    Refused(
        "register-a-type-name",
        lambda: Registry().register("Note", DictAdapter()),  # type: ignore[arg-type]
        TypeError,
        ("must be a class",),
    ),
    Refused(
        "register-an-adapter-class",
        lambda: Registry().register(Note, DictAdapter),  # type: ignore[arg-type]
        TypeError,
        ("register an instance", "DictAdapter()"),
    ),
    Refused(
        "register-not-an-adapter",
        lambda: Registry().register(Note, object()),  # type: ignore[arg-type]
        TypeError,
        ("not a msgdel adapter", "msgdel.BaseAdapter"),
    ),
    Refused(
        "register-sync-methods",
        lambda: Registry().register(Note, Sync()),  # type: ignore[arg-type]
        TypeError,
        ("async def",),
    ),
    Refused(
        "register-twice",
        lambda: REGISTRY.register(Note, DictAdapter()),
        ValueError,
        ("replace=True",),
    ),
    Refused(
        "register-replace-a-string",
        lambda: Registry().register(Note, DictAdapter(), replace="yes"),  # type: ignore[arg-type]
        TypeError,
        ("True or False",),
    ),
    Refused(
        "unregister-an-unknown-type",
        lambda: Registry(builtins=False).unregister(Note),
        KeyError,
        ("no adapter is registered",),
    ),
    Refused(
        "observer-not-callable",
        lambda: Registry().add_observer("print"),  # type: ignore[arg-type]
        TypeError,
        ("callable",),
    ),
    # Features, the value an adapter declares
    Refused("features-no-broker", lambda: Features("", Semantics.EXACT), ValueError, ("broker",)),
    Refused(
        "features-semantics-a-string",
        lambda: Features("x", "EXACT"),  # type: ignore[arg-type]
        TypeError,
        ("semantics", "Semantics"),
    ),
    Refused(
        "features-flag-a-string",
        lambda: Features("x", Semantics.EXACT, acknowledges="yes"),  # type: ignore[arg-type]
        TypeError,
        ("acknowledges", "bool"),
    ),
)


@CALLS
async def test_a_wrong_argument_is_refused_saying_what_to_pass(row: Refused) -> None:
    await check(row)


class Returns(DictAdapter):
    """Returns what it is given, as an adapter breaking the protocol would."""

    def __init__(self, returned: Any) -> None:
        super().__init__()
        self.returned = returned

    async def delete_many(self, messages: Sequence[Note], /) -> Any:
        return self.returned(messages) if callable(self.returned) else self.returned


def result(**changes: Any) -> DeleteResult:
    fields: dict[str, Any] = dict(
        broker="dict",
        target="notes",
        ids=("k",),
        semantics=Semantics.EXACT,
        outcome=Outcome.DELETED,
        removed=1,
    )
    fields.update(changes)
    return DeleteResult(**fields)


@pytest.mark.parametrize(
    "returned",
    [
        pytest.param(None, id="none"),
        pytest.param("deleted", id="a-string"),
        pytest.param([], id="too-few"),
        pytest.param(lambda ms: [result()] * (len(ms) + 1), id="too-many"),
        pytest.param(lambda ms: [True] * len(ms), id="not-results"),
        pytest.param(lambda ms: [result(outcome="DELETED")] * len(ms), id="outcome-a-string"),
        pytest.param(lambda ms: [result(semantics="exact")] * len(ms), id="semantics-a-string"),
        pytest.param(lambda ms: [result(removed=-1)] * len(ms), id="removed-negative"),
        pytest.param(lambda ms: [result(removed=1.0)] * len(ms), id="removed-a-float"),
        pytest.param(lambda ms: [ValueError("x")] * len(ms), id="a-plain-exception"),
    ],
)
@pytest.mark.parametrize("observed", [False, True], ids=["unobserved", "observed"])
async def test_an_adapter_that_breaks_the_protocol_gives_an_unknown_outcome_never_a_result(
    returned: Any, observed: bool
) -> None:
    """Observed, the usual call is checked in the pass that counts it: the same checks."""
    registry = Registry(builtins=False)
    registry.register(Note, Returns(returned))
    reports: list[msgdel.DeletionReport] = []
    if observed:
        registry.add_observer(reports.append)
    outcomes = await msgdel.delete_many([Note("a"), Note("b")], registry=registry,
                                        return_exceptions=True)  # fmt: skip
    assert len(outcomes) == 2
    for outcome in outcomes:
        assert isinstance(outcome, msgdel.DeletionFailed)
        assert "broke the msgdel adapter protocol" in str(outcome)
        assert "deleting again is safe" in str(outcome)
    assert [list(r.outcomes) for r in reports] == ([outcomes] if observed else [])

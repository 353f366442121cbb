"""What an adapter declares about itself, in one value the core reads."""

from __future__ import annotations

import attrs

from msgdel.semantics import Outcome, Semantics


@attrs.frozen
class Features:
    """An adapter's declared capabilities: the core, the middleware, the Batcher and the
    conformance kit decide from this value alone, never by probing the adapter.

    ```python
    features = Features(broker="sqs", semantics=Semantics.EXACT)
    ```
    """

    broker: str = attrs.field(
        validator=attrs.validators.and_(
            attrs.validators.instance_of(str), attrs.validators.min_len(1)
        )
    )
    """The broker family, as in [`DeleteResult.broker`][msgdel.DeleteResult.broker] (`"redis"`,
    `"kafka"`, ...)."""
    semantics: Semantics = attrs.field(validator=attrs.validators.instance_of(Semantics))
    """What a delete does at the broker (the strongest claim the adapter makes)."""
    acknowledges: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    """Deleting also acknowledges the delivery (Redis `XACKDEL`), so a caller that queues
    the deletion may skip FastStream's own acknowledgement."""
    closes: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    """The adapter opens connections of its own, which [`aclose`][msgdel.Deletable] releases."""
    coalesces: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    """`delete_many` sends one request per broker target, not one per message."""
    by_address: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    """The adapter also deletes by [address][msgdel.address.Address]: it implements
    `connect(url)` and `delete_at(connection, addresses)` (see
    [`AddressDeletable`][msgdel.AddressDeletable])."""
    repeat: Outcome = attrs.field(
        default=Outcome.ALREADY_GONE, validator=attrs.validators.instance_of(Outcome)
    )
    """What deleting an already deleted message reports (never an error, never a removal)."""

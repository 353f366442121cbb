"""The errors msgdel raises; every one is a [`MsgdelError`][msgdel.MsgdelError]."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from msgdel.adapters import BuiltinAdapter

_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^\s/?#]*@")
"""A URL's `user:password@`, up to the *last* `@` before its path: a raw `@` in a
password must not leave the rest of the password behind."""
_SECRET_KEYS = r"(?:password|passwd|pwd|token|secret|api[_-]?key|access[_-]?key|credentials)"
_QUOTED_SECRET = re.compile(
    rf"(?i)(?P<key>\b\w*{_SECRET_KEYS}\w*['\"]?\s*[=:]\s*)(?P<q>['\"])(?:(?!(?P=q)).)*(?P=q)"
)
_BARE_SECRET = re.compile(rf"(?i)(?P<key>\b\w*{_SECRET_KEYS}\w*\s*=\s*)[^\s'\"&,;)\]}}]+")
"""`password=...`, `token: '...'` and the like: query strings and client reprs."""


def redact(text: str) -> str:
    """`text` without secrets: the user-info of every URL (`user:password@`) and every
    value of a password, token, secret or key (`password=...`, `token='...'`) become
    `***`."""
    text = _URL_USERINFO.sub(r"\g<scheme>***@", text)
    text = _QUOTED_SECRET.sub(r"\g<key>\g<q>***\g<q>", text)
    return _BARE_SECRET.sub(r"\g<key>***", text)


class MsgdelError(Exception):
    """Base class of every msgdel error. Its text never holds a URL's password or token.

    Raised by [`msgdel.delete_many`][msgdel.delete_many], it carries in `outcomes` every message's
    result or error, in input order, so what did complete is not lost.
    """

    outcomes: list[Any] | None = None

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class AdapterNotFound(MsgdelError, LookupError):
    """No adapter is registered for this message's class or any of its ancestors."""

    def __init__(
        self,
        message_type: type,
        registered: Iterable[str],
        *,
        missing_extras: Iterable[str] = (),
        builtin: BuiltinAdapter | None = None,
    ) -> None:
        names = sorted(registered)
        listing = ", ".join(names) if names else "none"
        self.message_type = message_type
        if builtin is not None:  # a FastStream class this registry does not know (any more)
            advice = (
                f"msgdel's built-in adapter for it is {builtin.module}.{builtin.factory} "
                f"(extra {builtin.extra!r}): register it, msgdel.register("
                f"{message_type.__name__}, {builtin.factory}()), or use a Registry() with its "
                "built-ins"
            )
        elif message_type in _BODY_TYPES:  # the usual mistake: the decoded body, not the message
            advice = (
                "msgdel deletes FastStream message objects, not message bodies: declare the "
                "message in the handler (for example `msg: RedisStreamMessage` from "
                "faststream.redis.annotations) and pass that, or use "
                "msgdel.faststream.DeleteMiddleware"
            )
        elif issubclass(message_type, type):
            advice = (
                "a class was passed where a message object was expected: pass the message the "
                "handler received, not its class"
            )
        elif message_type.__module__.split(".")[0] in _CLIENT_PACKAGES:
            advice = (
                f"{message_type.__name__} is the broker client's own message, not FastStream's: "
                "pass the FastStream message object that wraps it (declare `msg: NatsMessage`, "
                "`msg: RabbitMessage`, ... from faststream.<broker>.annotations in the handler)"
            )
        else:
            advice = f"Register one with msgdel.register({message_type.__name__}, adapter)"
        extras = ", ".join(f"msgdel[{e}]" for e in missing_extras)
        more = f" Not installed, each adding its broker's messages: {extras}." if extras else ""
        super().__init__(
            f"no msgdel adapter for {_qualname(message_type)}; registered message types: "
            f"{listing}. {advice}.{more}"
        )


_BODY_TYPES = frozenset({bytes, bytearray, memoryview, str, dict, list, tuple, int, float, bool,
                         type(None)})  # fmt: skip
"""Types FastStream decodes message bodies into; what a handler has when it lacks the message."""

_CLIENT_PACKAGES = frozenset(
    {"nats", "aio_pika", "aiormq", "aiokafka", "confluent_kafka", "cimpl", "redis", "zmqtt"}
)
"""Top-level packages of the broker clients: their message objects are the raw ones."""


class NotDeletable(MsgdelError, ValueError):
    """This message cannot be addressed at its broker (no ids, no key, requeued, ...)."""


class UnsupportedDeletion(MsgdelError):
    """The broker, queue type, or installed client cannot perform this deletion."""


class DeletionFailed(MsgdelError):
    """The broker refused the deletion or could not be reached.

    `retryable` says whether the same call can succeed later (a broker that was down,
    a leader that moved); `cause` is the underlying client exception.
    """

    def __init__(
        self, message: str, *, retryable: bool, cause: BaseException | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.cause = cause
        if cause is not None:
            self.__cause__ = cause


def _qualname(t: type) -> str:
    return f"{t.__module__}.{t.__qualname__}"

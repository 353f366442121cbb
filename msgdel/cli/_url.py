"""The URL argument every command takes: its help, and the password from the environment."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import typer


def url_argument(brokers: str) -> Any:
    """The `URL` argument of a command that works on `brokers` (`"redis://, nats://"`)."""
    return typer.Argument(
        help=f"The broker: {brokers}. A password may come from MSGDEL_PASSWORD instead of the URL.",
        show_default=False,
    )


def with_env_password(url: str) -> str:
    """`url` with the password of `MSGDEL_PASSWORD` in its user-info, unless it has one (or
    the variable is unset)."""
    password = os.environ.get("MSGDEL_PASSWORD")
    if not password:
        return url
    parts = urlsplit(url)
    if parts.password is not None:
        return url
    user = quote(parts.username or "", safe="")
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))

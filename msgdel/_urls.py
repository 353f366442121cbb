"""Broker URLs, as `delete_at`, `erase` and the command line take them: which scheme, and
whether it fits what is to be deleted."""

from __future__ import annotations

from collections.abc import Sequence

from msgdel.errors import redact


def scheme_of(url: str) -> str:
    """The URL's scheme, lower case (`""` for text that is no URL)."""
    return url.partition("://")[0].lower() if "://" in url else ""


def require_scheme(url: str, schemes: Sequence[str], what: str) -> None:
    """Raise `ValueError` naming the expected schemes unless `url` has one of them; the URL's
    password never appears in the text."""
    if scheme_of(url) not in schemes:
        expected = ", ".join(f"{s}://" for s in schemes)
        raise ValueError(f"{what} on a {expected} URL, got {redact(url)!r}; nothing was sent")

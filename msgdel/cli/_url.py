"""Connection URLs as the command line takes them: the password may come from the environment."""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit


def with_password(url: str, password: str | None) -> str:
    """`url` with `password` (MSGDEL_PASSWORD) in its user-info, unless it has one."""
    if not password:
        return url
    parts = urlsplit(url)
    if parts.password is not None:
        return url
    user = quote(parts.username or "", safe="")
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))

"""A fresh ``msgdel.default_registry`` for a spec that runs docs code registering on it."""

from __future__ import annotations

import importlib

import pytest

import msgdel

_HOLDERS = ("msgdel", "msgdel.registry", "msgdel._dispatch")
"""The modules whose global ``default_registry`` the public functions read."""


def fresh_default_registry(monkeypatch: pytest.MonkeyPatch) -> msgdel.Registry:
    """Make a new registry the default one until ``monkeypatch`` undoes it: what the code
    registers (``msgdel.register(..., replace=True)``) leaves the real default registry, and
    the other specs that use it, untouched. The caller closes what it registered."""
    fresh = msgdel.Registry()
    for name in _HOLDERS:
        monkeypatch.setattr(importlib.import_module(name), "default_registry", fresh)
    return fresh

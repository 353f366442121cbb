"""Which adapter deletes which FastStream message class."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import threading
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from msgdel import _check
from msgdel.adapters import BUILTINS, BuiltinAdapter
from msgdel.address import Address
from msgdel.errors import AdapterNotFound, MsgdelError, UnsupportedDeletion
from msgdel.features import Features
from msgdel.observe import DeletionReport, Observer
from msgdel.protocol import Deletable

if TYPE_CHECKING:
    from types import TracebackType

log = logging.getLogger("msgdel.observe")

ENTRY_POINT_GROUP = "msgdel.adapters"
"""Entry points in this group name a callable `(registry) -> None` that registers adapters."""


def _qualname(t: type) -> str:
    return f"{t.__module__}.{t.__qualname__}"


class Registry:
    """Maps FastStream message classes to adapters.

    Lookup follows the message class's MRO: a subclass resolves to the adapter of its closest
    registered ancestor. Results are cached; any change clears the cache. With
    `builtins=True` the built-in adapters are known by class name and imported on first use,
    and they yield to an explicit registration for the same class.

    A registry owns the built-in adapters it created: [`aclose`][msgdel.Registry.aclose] (or leaving
    `async with registry:`) closes them; call it when the application stops (FastStream's
    `on_shutdown`). Adapters you register stay yours to close. Observers added with
    [`add_observer`][msgdel.Registry.add_observer] see every deletion made through this registry.
    """

    def __init__(self, *, builtins: bool = True) -> None:
        self._adapters: dict[type, Deletable] = {}
        self._builtins: dict[str, BuiltinAdapter] = dict(BUILTINS) if builtins else {}
        self._builtin_instances: dict[BuiltinAdapter, Deletable] = {}
        self._cache: dict[type, Deletable] = {}
        self._lock = threading.Lock()
        self.observers: tuple[Observer, ...] = ()
        """The observers called with every [`DeletionReport`][msgdel.DeletionReport], in order."""

    def register(self, message_type: type, adapter: Deletable, *, replace: bool = False) -> None:
        """Register `adapter` for `message_type` and its subclasses.

        Raises `ValueError` when the type already has an explicitly registered adapter and
        `replace` is false, and `TypeError` when `adapter` does not satisfy
        [`Deletable`][msgdel.Deletable].
        """
        if not isinstance(message_type, type):
            raise TypeError(f"message_type must be a class, got {message_type!r}")
        _check.flag("replace", replace)
        check_adapter(adapter)
        if issubclass(message_type, Address):
            check_address_adapter(adapter, message_type)
        with self._lock:
            current = self._adapters.get(message_type)
            if current is not None and not replace:
                raise ValueError(
                    f"{_qualname(message_type)} already has adapter {current!r}; "
                    f"pass replace=True to register {adapter!r} instead"
                )
            self._adapters[message_type] = adapter
            self._builtins.pop(_qualname(message_type), None)
            self._cache.clear()

    def unregister(self, message_type: type) -> None:
        """Forget the adapter of `message_type` (built-in or not). Raises `KeyError` if none."""
        with self._lock:
            found = self._adapters.pop(message_type, None) is not None
            found = self._builtins.pop(_qualname(message_type), None) is not None or found
            if not found:
                raise KeyError(f"no adapter is registered for {_qualname(message_type)}")
            self._cache.clear()

    def resolve(self, message_type: type) -> Deletable:
        """The adapter for `message_type`: its own, else its closest registered ancestor's.

        Raises [`AdapterNotFound`][msgdel.AdapterNotFound] naming the type and the registered types.
        """
        try:
            return self._cache[message_type]
        except KeyError:
            return self._resolve_uncached(message_type)

    def _before_lookup(self) -> None:
        """Hook run before an uncached lookup or an iteration."""

    def _resolve_uncached(self, message_type: type) -> Deletable:
        self._before_lookup()
        mro = getattr(message_type, "__mro__", (message_type,))
        with self._lock:
            # What the user registered, for the class or an ancestor, wins over a built-in:
            # an adapter registered for KafkaMessage also serves KafkaAckableMessage.
            adapter = next((self._adapters[c] for c in mro if c in self._adapters), None)
            if adapter is None:
                for cls in mro:
                    builtin = self._builtins.get(_qualname(cls))
                    if builtin is not None:
                        adapter = self._builtin_instance(builtin)
                        break
            if adapter is not None:
                self._cache[message_type] = adapter
                return adapter
        raise AdapterNotFound(
            message_type,
            self._registered_names(),
            missing_extras=sorted({b.extra for b in self._builtins.values() if not _installed(b)}),
            builtin=_builtin_of(message_type),
        )

    def _builtin_instance(self, builtin: BuiltinAdapter) -> Deletable:
        adapter = self._builtin_instances.get(builtin)
        if adapter is None:
            try:
                module = importlib.import_module(builtin.module)
            except ImportError as exc:
                raise UnsupportedDeletion(
                    f"deleting this message needs the {builtin.extra!r} extra: "
                    f"pip install 'msgdel[{builtin.extra}]' ({exc})"
                ) from exc
            factory: Callable[[], Deletable] = getattr(module, builtin.factory)
            adapter = self._builtin_instances[builtin] = factory()
        return adapter

    # -- observers -------------------------------------------------------------------------
    def add_observer(self, observer: Observer) -> None:
        """Call `observer` with a [`DeletionReport`][msgdel.DeletionReport] of every adapter call
        made through this registry (`delete`, `delete_many`, Batcher flushes, the
        middleware). It must not block; what it raises is logged and ignored."""
        if not callable(observer):
            raise TypeError(f"an observer must be callable with a DeletionReport: {observer!r}")
        with self._lock:
            self.observers = (*self.observers, observer)

    def remove_observer(self, observer: Observer) -> None:
        """Stop calling `observer`. Raises `ValueError` if it was not added."""
        with self._lock:
            if observer not in self.observers:
                raise ValueError(f"{observer!r} is not an observer of this registry")
            observers = list(self.observers)
            observers.remove(observer)
            self.observers = tuple(observers)

    def report(self, report: DeletionReport) -> None:
        """Hand `report` to every observer; an observer's exception is logged, not raised."""
        for observer in self.observers:
            try:
                observer(report)
            except Exception:
                log.exception("msgdel observer %r failed; the deletion is unaffected", observer)

    # -- lifecycle -------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Close every built-in adapter this registry created (their connections), once each.

        The registry stays usable: a later deletion creates its adapter again.
        """
        with self._lock:
            built = list(self._builtin_instances.values())
            self._builtin_instances.clear()
            self._cache.clear()
        for adapter in built:
            await adapter.aclose()

    async def __aenter__(self) -> Registry:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _registered_names(self) -> list[str]:
        """The user's types, and the built-in ones whose broker client is installed."""
        builtins = {name for name, b in self._builtins.items() if _installed(b)}
        return sorted({_qualname(t) for t in self._adapters} | builtins)

    def __iter__(self) -> Iterator[tuple[type, Deletable]]:
        """`(message_type, adapter)` pairs, importing the built-ins whose client is installed."""
        self._before_lookup()
        pairs = dict(self._adapters)
        for name in list(self._builtins):
            message_type = _import_class(name)
            if message_type is None or message_type in pairs:
                continue
            try:
                pairs[message_type] = self.resolve(message_type)
            except MsgdelError:
                continue
        return iter(pairs.items())

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Call every entry point of `group` with this registry; return their names.

        Raises [`MsgdelError`][msgdel.MsgdelError] naming the entry point that failed to load or
        run.
        """
        loaded = []
        for ep in entry_points(group=group):
            try:
                install: Callable[[Registry], Any] = ep.load()
                install(self)
            except Exception as exc:
                raise MsgdelError(
                    f"the msgdel adapter entry point {ep.name!r} ({ep.value}) failed: {exc!r}"
                ) from exc
            loaded.append(ep.name)
        return loaded

    def __repr__(self) -> str:
        return f"<msgdel.Registry {len(self._adapters)} registered, {len(self._builtins)} built-in>"


def check_adapter(adapter: object) -> None:
    """Raise `TypeError` saying what is wrong when `adapter` is not a usable adapter."""
    if isinstance(adapter, type):
        raise TypeError(
            f"{adapter.__qualname__} is a class: register an instance, {adapter.__qualname__}()"
        )
    if not isinstance(adapter, Deletable):
        missing = [n for n in ("features", "delete", "delete_many", "aclose")
                   if not hasattr(adapter, n)]  # fmt: skip
        raise TypeError(
            f"{adapter!r} is not a msgdel adapter: it lacks {', '.join(missing)}. Subclass "
            "msgdel.BaseAdapter and set `features = msgdel.Features(...)`"
        )
    if not isinstance(adapter.features, Features):
        raise TypeError(f"{adapter!r}.features must be a msgdel.Features, got {adapter.features!r}")
    for name in ("delete", "delete_many", "aclose"):
        if not inspect.iscoroutinefunction(getattr(adapter, name)):
            raise TypeError(f"{adapter!r}.{name} must be an async method (async def)")


def check_address_adapter(adapter: Deletable, address_type: type) -> None:
    """Raise `TypeError` unless `adapter` declares and implements deletion by address."""
    if not adapter.features.by_address:
        raise TypeError(
            f"{adapter!r} cannot delete {address_type.__qualname__} addresses: its features do "
            "not declare by_address=True (an adapter that deletes by address implements "
            "connect(url) and async delete_at(connection, addresses))"
        )
    connect, delete_at = (getattr(adapter, n, None) for n in ("connect", "delete_at"))
    if not callable(connect) or not inspect.iscoroutinefunction(delete_at):
        raise TypeError(
            f"{adapter!r} declares by_address=True, so it needs connect(url) and an async "
            "delete_at(connection, addresses)"
        )


def _import_class(qualified_name: str) -> type | None:
    module_name, _, class_name = qualified_name.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    found = getattr(module, class_name, None)
    return found if isinstance(found, type) else None


class _DefaultRegistry(Registry):
    """The registry used wherever `registry=None`; loads entry points on its first miss."""

    def __init__(self) -> None:
        super().__init__()
        self._entry_points_loaded = False

    def _before_lookup(self) -> None:
        if not self._entry_points_loaded:
            self._entry_points_loaded = True
            self.load_entry_points()


default_registry: Registry = _DefaultRegistry()
"""The [`Registry`][msgdel.Registry] used wherever `registry=None`."""


def register(message_type: type, adapter: Deletable, *, replace: bool = False) -> None:
    """Register `adapter` for `message_type` on [`default_registry`][msgdel.default_registry]."""
    default_registry.register(message_type, adapter, replace=replace)


def unregister(message_type: type) -> None:
    """Remove the adapter of `message_type` from [`default_registry`][msgdel.default_registry]."""
    default_registry.unregister(message_type)


def _installed(builtin: BuiltinAdapter) -> bool:
    """Whether the broker client of `builtin` is importable (its extra is installed)."""
    return importlib.util.find_spec(builtin.client) is not None


def _builtin_of(message_type: type) -> BuiltinAdapter | None:
    """The built-in adapter for `message_type` or its closest ancestor, registered or not."""
    for cls in getattr(message_type, "__mro__", (message_type,)):
        builtin = BUILTINS.get(_qualname(cls))
        if builtin is not None:
            return builtin
    return None

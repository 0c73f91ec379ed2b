"""One small, loud registry (STYLE 5): a dict from name to factory.

Registering a name twice raises; looking up an unknown name raises with the list of known
names. Each kind of thing (attacks, models, datasets, training methods, defenses) owns one
``Registry`` instance next to the code that fills it, so nothing is looked up by ``eval`` or a
chain of ``if name == ...``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

F = TypeVar("F")


class Registry(Generic[F]):
    """``kind`` names what is registered (for messages), e.g. ``"attack"`` or ``"model"``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, F] = {}

    def add(self, name: str, factory: F) -> F:
        """Register ``factory`` under ``name``; raises KeyError if the name is taken."""
        if name in self._factories:
            raise KeyError(f"{self.kind} {name!r} registered twice")
        self._factories[name] = factory
        return factory

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator form of ``add``: ``@REGISTRY.register("name")``."""

        def deco(factory: F) -> F:
            return self.add(name, factory)

        return deco

    def get(self, name: str) -> F:
        """The factory registered under ``name``; KeyError naming the known names if none."""
        try:
            return self._factories[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {self.known()}") from None

    def known(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self.known())

    def __len__(self) -> int:
        return len(self._factories)

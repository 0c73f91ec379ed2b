"""adv_core.registry: one loud name -> factory registry, and every registry of adv_core on it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from adv_core.registry import Registry


def test_register_and_get() -> None:
    reg: Registry[Callable[[int], int]] = Registry("widget")
    reg.add("double", lambda x: 2 * x)

    @reg.register("square")
    def square(x: int) -> int:
        return x * x

    assert reg.get("double")(3) == 6
    assert reg.get("square") is square  # the decorator returns the function unchanged
    assert reg.known() == ["double", "square"] == list(reg)
    assert "square" in reg and "cube" not in reg and len(reg) == 2


def test_registering_twice_raises() -> None:
    reg: Registry[Callable[[], int]] = Registry("widget")
    reg.add("a", lambda: 1)
    with pytest.raises(KeyError, match="widget 'a' registered twice"):
        reg.add("a", lambda: 2)
    assert reg.get("a")() == 1  # the first registration stays


def test_unknown_name_lists_the_known_ones() -> None:
    reg: Registry[Callable[[], int]] = Registry("widget")
    reg.add("b", lambda: 1)
    reg.add("a", lambda: 2)
    with pytest.raises(KeyError, match=r"unknown widget 'c'; known: \['a', 'b'\]"):
        reg.get("c")

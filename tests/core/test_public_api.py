"""The public API is explicit and complete: everything a plugin or host app needs is in
``marketfeed.__all__`` (and ``marketfeed.testing.__all__``), nothing private leaks."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import marketfeed


def _private_modules() -> list[str]:
    return [
        m.name
        for m in pkgutil.iter_modules(marketfeed.__path__)
        if m.name.startswith("_") and m.name not in ("__main__",)
    ]


def test_all_names_exist_and_are_documented() -> None:
    for name in marketfeed.__all__:
        obj = getattr(marketfeed, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"marketfeed.{name} has no docstring"


def test_every_public_name_of_private_modules_is_exported() -> None:
    """Each private module's ``__all__`` is re-exported by the package (no hidden API)."""
    missing = []
    for mod_name in _private_modules():
        module = importlib.import_module(f"marketfeed.{mod_name}")
        for name in getattr(module, "__all__", []):
            if name not in marketfeed.__all__:
                missing.append(f"{mod_name}.{name}")
    assert not missing, f"public names not exported from marketfeed: {missing}"


def test_all_is_sorted_and_unique() -> None:
    assert len(set(marketfeed.__all__)) == len(marketfeed.__all__)


def test_models_are_frozen_and_tagged() -> None:
    from marketfeed import Candle, Trade, event_kind

    assert event_kind(Trade) == "trade"
    assert event_kind(Candle) == "candle"
    assert Trade.__struct_config__.frozen

"""Model registry: architectures are found by name (timm `_registry.py` style, STYLE A.6).

A factory is registered with `@register_model("student")`; `create_model("student", **kwargs)`
builds it. The name and kwargs are what a model card stores, so a card recreates its network.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sos_core.errors import UnknownNameError

if TYPE_CHECKING:
    from torch import nn

logger = logging.getLogger(__name__)

ModelFactory = Callable[..., "nn.Module"]
F = TypeVar("F", bound=Callable[..., Any])

_MODELS: dict[str, ModelFactory] = {}

# Modules whose import registers the built-in architectures; imported on first lookup so that
# `create_model` works without the caller importing them first.
_BUILTIN_MODULES = ("sos_core.models.cam_net",)
_builtins_loaded = False


def register_model(name: str) -> Callable[[F], F]:
    """Register a model factory under `name`.

    Parameters
    ----------
    name
        Registry key, stored in model cards as `architecture`.

    Raises
    ------
    ValueError
        If the name is already taken by another factory (a programming error).
    """

    def decorator(factory: F) -> F:
        existing = _MODELS.get(name)
        if existing is not None and existing is not factory:
            raise ValueError(f"model name {name!r} is already registered")
        _MODELS[name] = factory
        return factory

    return decorator


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)
        _builtins_loaded = True


def list_models() -> list[str]:
    """The registered architecture names, sorted."""
    _load_builtins()
    return sorted(_MODELS)


def get_model_factory(name: str) -> ModelFactory:
    """The factory registered as `name`.

    Raises
    ------
    UnknownNameError
        If no architecture of that name exists.
    """
    _load_builtins()
    try:
        return _MODELS[name]
    except KeyError:
        known = ", ".join(sorted(_MODELS))
        raise UnknownNameError(
            f"there is no model architecture named {name!r}; known: {known}."
        ) from None


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the architecture `name` with `kwargs` (randomly initialised weights).

    Raises
    ------
    UnknownNameError
        If no architecture of that name exists.
    sos_core.errors.ParameterError
        If a keyword argument is out of range (raised by the factory).
    """
    return get_model_factory(name)(**kwargs)

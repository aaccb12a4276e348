"""Turning "provider:name" strings into model objects, without importing any SDK."""

from __future__ import annotations

from tools.errors import ModelNameError

from ._model import Model
from ._prices import Price, PriceTable

__all__ = ["PROVIDERS", "check_model", "model_id", "model_price", "resolve_model"]

PROVIDERS = ("anthropic", "openai")


def resolve_model(spec: str | Model, *, prices: PriceTable | None = None, stream: bool = False) -> Model:
    """A model object for "anthropic:NAME" or "openai:NAME"; a model object is returned as is.

    Raises:
        ModelNameError: the string is malformed or names an unknown provider.
    """
    if not isinstance(spec, str):
        check_model(spec)
        return spec
    provider, name = _parts(spec)
    if provider == "anthropic":
        from ._anthropic import AnthropicModel

        return AnthropicModel(name, prices=prices, stream=stream)
    from ._openai import OpenAIModel

    return OpenAIModel(name, prices=prices, stream=stream)


def check_model(spec: object) -> None:
    """Raise `ModelNameError` for what `resolve_model` would refuse; build nothing.

    For settings checked when they are given (a supervisor's planner and workers), so that a
    mistyped name fails there rather than in a run, after other calls were paid for.
    """
    if isinstance(spec, str):
        _parts(spec)
        return
    # Duck-typed on purpose: isinstance against a runtime Protocol costs ~16 us a call.
    if not (callable(getattr(spec, "request", None)) and hasattr(spec, "provider") and hasattr(spec, "name")):
        raise ModelNameError(spec, "not a string and not a model object (no async request())")


def _parts(spec: str) -> tuple[str, str]:
    provider, sep, name = spec.partition(":")
    if not sep or not provider or not name.strip() or name != name.strip():
        raise ModelNameError(spec, "missing provider or model name")
    if provider not in PROVIDERS:
        raise ModelNameError(spec, f"unknown provider {provider!r} (known: {', '.join(PROVIDERS)})")
    return provider, name


def model_id(model: Model) -> str:
    """The "provider:name" id of a model object, the key of prices and rate limits."""
    return f"{model.provider}:{model.name}"


def model_price(model: Model, prices: PriceTable | None) -> Price | None:
    """What a model's calls cost: its own `price`, else the table's (the built-in prices when
    None) for its id; None when neither knows it (unpriced, never free). The budget reserves
    at this price and usage is counted at it."""
    price = getattr(model, "price", None)
    if isinstance(price, Price):
        return price
    return (prices if prices is not None else PriceTable()).lookup(model_id(model))

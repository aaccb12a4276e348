"""Turning "provider:name" strings into model objects, without importing any SDK."""

from __future__ import annotations

from tools.errors import ModelNameError

from ._model import Model
from ._prices import PriceTable

__all__ = ["PROVIDERS", "model_id", "resolve_model"]

PROVIDERS = ("anthropic", "openai")


def resolve_model(spec: str | Model, *, prices: PriceTable | None = None, stream: bool = False) -> Model:
    """A model object for "anthropic:NAME" or "openai:NAME"; a model object is returned as is.

    Raises:
        ModelNameError: the string is malformed or names an unknown provider.
    """
    if not isinstance(spec, str):
        # Duck-typed on purpose: isinstance against a runtime Protocol costs ~16 us a call.
        if callable(getattr(spec, "request", None)) and hasattr(spec, "provider") and hasattr(spec, "name"):
            return spec
        raise ModelNameError(spec, "not a string and not a model object (no async request())")
    provider, sep, name = spec.partition(":")
    if not sep or not provider or not name.strip() or name != name.strip():
        raise ModelNameError(spec, "missing provider or model name")
    if provider == "anthropic":
        from ._anthropic import AnthropicModel

        return AnthropicModel(name, prices=prices, stream=stream)
    if provider == "openai":
        from ._openai import OpenAIModel

        return OpenAIModel(name, prices=prices, stream=stream)
    raise ModelNameError(spec, f"unknown provider {provider!r} (known: {', '.join(PROVIDERS)})")


def model_id(model: Model) -> str:
    """The "provider:name" id of a model object, the key of prices and rate limits."""
    return f"{model.provider}:{model.name}"

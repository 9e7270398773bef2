"""The store's own errors, shared by every repository."""

from __future__ import annotations

__all__ = ["NotFoundError", "StoreConnectionError"]


class StoreConnectionError(ConnectionError):
    """The database cannot be reached or opened; the message names the (masked) URL."""


class NotFoundError(LookupError):
    """A run, an agent, a model or a request id that the store does not hold; the message names
    it."""

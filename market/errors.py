"""Exchange errors, grouped by what the operator should do about them.

ccxt raises dozens of exception classes; Redline's callers only need to know one thing: wait and try
again (``RetryLater``), or change the configuration (``FixConfig``). ``translate`` is the one place
that maps ccxt's classes onto those two groups; anything it cannot classify stays a plain
``ExchangeError`` (not retried, message kept), so a surprise is never silently retried forever.
"""

from __future__ import annotations

import ccxt

__all__ = [
    "ExchangeError",
    "FixConfig",
    "RetryLater",
    "translate",
    "unknown_exchange",
    "unknown_symbol",
    "unsupported_timeframe",
]


class ExchangeError(Exception):
    """An exchange call failed. The message says what happened and what to do."""


class RetryLater(ExchangeError):
    """A transient failure: network, timeout, rate limit (429), exchange down (5xx), garbled page.

    ``retry_after_s`` is the exchange's own ``Retry-After`` hint when it sent one.
    """

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class FixConfig(ExchangeError):
    """Retrying will not help: a symbol, exchange id, timeframe or credential is wrong."""


def translate(
    error: BaseException,
    *,
    exchange_id: str,
    symbol: str | None = None,
    timeframe: str | None = None,
    retry_after_s: float | None = None,
) -> ExchangeError:
    """The Redline exception for a ccxt ``error`` raised while calling ``exchange_id``.

    Returns (does not raise) so callers write ``raise translate(exc, ...) from exc`` and keep the
    ccxt error as the cause. ``symbol`` and ``timeframe`` name the request in the message.
    """
    if isinstance(error, ExchangeError):
        return error
    detail = _one_line(error)
    what = _what(exchange_id, symbol, timeframe)
    # Order matters: ccxt's hierarchy nests these (RequestTimeout is a NetworkError, BadSymbol a
    # BadRequest, PermissionDenied an AuthenticationError), so the specific cases come first.
    if isinstance(error, ccxt.RequestTimeout):
        return RetryLater(
            f"{what}: the exchange did not answer in time ({detail}); try again later "
            "or raise fetch.timeout_ms"
        )
    if isinstance(error, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
        hint = f" (it asked to wait {retry_after_s:g}s)" if retry_after_s else ""
        return RetryLater(
            f"{what}: rate limited by the exchange{hint} ({detail}); try again later and keep "
            "fetch.enable_rate_limit on",
            retry_after_s=retry_after_s,
        )
    if isinstance(error, ccxt.ExchangeNotAvailable):
        return RetryLater(f"{what}: the exchange is unavailable ({detail}); try again later")
    if isinstance(error, ccxt.NetworkError):
        return RetryLater(
            f"{what}: network error ({detail}); check the connection, try again later"
        )
    if isinstance(error, ccxt.BadResponse):
        return RetryLater(f"{what}: the exchange sent a garbled answer ({detail}); try again later")
    if isinstance(error, ccxt.BadSymbol):
        shown = repr(symbol) if symbol else "that symbol"
        return FixConfig(f"{exchange_id} has no symbol {shown}; check --symbol ({detail})")
    if isinstance(error, ccxt.PermissionDenied):
        return FixConfig(
            f"{what}: the API key lacks the permission for this call ({detail}); "
            "check the key's permissions on the exchange"
        )
    if isinstance(error, ccxt.AuthenticationError):
        return FixConfig(
            f"{what}: authentication failed ({detail}); check the API key and secret "
            "in the environment"
        )
    if isinstance(error, ccxt.NotSupported):
        return FixConfig(
            f"{what}: not supported by {exchange_id} ({detail}); pick another exchange"
        )
    if isinstance(error, ccxt.BadRequest):
        return FixConfig(f"{what}: the exchange refused the request ({detail}); check the settings")
    return ExchangeError(f"{what}: unexpected exchange error ({detail})")


def unknown_exchange(exchange_id: str) -> FixConfig:
    """``make_exchange`` was given an id ccxt does not know."""
    known = ", ".join(
        e for e in ("binance", "kraken", "coinbase", "okx", "bybit") if e in ccxt.exchanges
    )
    return FixConfig(
        f"ccxt has no exchange {exchange_id!r}; check --exchange (e.g. {known}; "
        f"ccxt knows {len(ccxt.exchanges)} ids, see ccxt.exchanges)"
    )


def unsupported_timeframe(exchange_id: str, timeframe: str, supported: list[str]) -> FixConfig:
    """The exchange has no candles of ``timeframe`` (its ``timeframes`` lack it)."""
    return FixConfig(
        f"{exchange_id} does not support timeframe {timeframe!r}; check --timeframe "
        f"(it supports {', '.join(supported)})"
    )


def unknown_symbol(exchange_id: str, symbol: str, similar: list[str]) -> FixConfig:
    """The exchange's market listing lacks ``symbol``; ``similar`` are listed look-alikes."""
    hint = f" (similar: {', '.join(similar)})" if similar else ""
    return FixConfig(f"{exchange_id} has no symbol {symbol!r}; check --symbol{hint}")


def _what(exchange_id: str, symbol: str | None, timeframe: str | None) -> str:
    return " ".join(part for part in (exchange_id, symbol, timeframe) if part)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    if len(text) > 300:  # HTML error pages can be long; the start says enough
        text = text[:300] + "..."
    return f"{type(error).__name__}: {text}"

"""The replay's report: what the loop did (retrains, promotions, refusals, ...) and what it earned.

A replay ends with a ``ReplayReport``: printed (``render``) and written as ``replay_report.json``
under the data root (``write``). Per series it holds ``market.equity.compare_series``: the equity of
what Serve answered hour by hour beside buy-and-hold and the SMA crossover chosen on the data
before the replay, over the same bars and costs. Events are the loop's decisions with their
numbers, in the order they happened.

The JSON is stable: keys sorted, floats rounded to 6 decimals, NaN and infinities as null, so two
replays that did the same thing write the same text.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from market.equity import STATS

REPORT_FILE = "replay_report.json"
"""The report's file name under the data root."""

EVENT_KINDS: tuple[str, ...] = (
    "retrain", "validation", "promotion", "refusal", "expire", "decay", "auto_enable", "swap",
)  # fmt: skip
EVENT_KEYS: tuple[str, ...] = ("at", "kind", "subject", "numbers")
SERIES_ROWS: tuple[str, ...] = ("served", "buy_and_hold", "sma_cross")
"""The rows of a series' table, in print order (the keys of ``compare_series``' result)."""
DECIMALS = 6


def _iso(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an ISO date or time string; got {value!r}")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} must be an ISO date or time string; got {value!r}") from None


def _plain(value: Any) -> Any:
    """JSON values: floats rounded to ``DECIMALS`` (non-finite: None), numpy scalars as Python's."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()  # a numpy scalar
    if isinstance(value, float):
        return round(value, DECIMALS) + 0.0 if math.isfinite(value) else None  # + 0.0: no -0.0
    return value


def _check_event(event: Any, i: int) -> None:
    where = f"events[{i}]"
    if not isinstance(event, dict) or set(event) != set(EVENT_KEYS):
        keys = sorted(event) if isinstance(event, dict) else type(event).__name__
        raise ValueError(f"{where} must be a dict with keys {list(EVENT_KEYS)}; got {keys}")
    _iso(event["at"], f"{where}.at")
    if event["kind"] not in EVENT_KINDS:
        raise ValueError(
            f"{where}.kind must be one of {', '.join(EVENT_KINDS)}; got {event['kind']!r}"
        )
    if not isinstance(event["subject"], str) or not event["subject"]:
        raise ValueError(f"{where}.subject must be a non-empty string; got {event['subject']!r}")
    numbers = event["numbers"]
    if not isinstance(numbers, dict):
        raise ValueError(f"{where}.numbers must be a dict; got {numbers!r}")
    for key, value in numbers.items():
        if not isinstance(key, str) or not (
            value is None or isinstance(value, int | float | str) or hasattr(value, "item")
        ):
            raise ValueError(
                f"{where}.numbers[{key!r}] must be a number, a string or None; got {value!r}"
            )


def _check_series(name: str, result: Any) -> None:
    where = f"series[{name!r}]"
    if not isinstance(result, dict):
        raise ValueError(f"{where} must be a compare_series result (a dict); got {result!r}")
    for row in SERIES_ROWS:
        stats = result.get(row)
        missing = [k for k in STATS if not isinstance(stats, dict) or k not in stats]
        if row == "sma_cross" and isinstance(stats, dict):
            missing += [k for k in ("fast", "slow") if k not in stats]
        if missing:
            raise ValueError(f"{where}.{row} lacks {missing}")
    for key in ("bars", "unanswered"):
        if key not in result:
            raise ValueError(f"{where} lacks {key!r}")


@dataclass(frozen=True)
class ReplayReport:
    """Everything a replay reports. ``series`` keys read ``"exchange SYMBOL timeframe"``."""

    started_at: str  # wall clock, ISO
    ended_at: str
    replay_from: str  # simulated clock, ISO
    replay_until: str
    wall_seconds: float
    sim_days: float
    series: dict[str, dict[str, Any]]  # "binance BTC/USDT 1h" -> market.equity.compare_series
    events: list[dict[str, Any]]  # {at (ISO), kind (EVENT_KINDS), subject, numbers}
    retrains: int
    promotions: int
    refusals: int

    def __post_init__(self) -> None:
        for name in ("started_at", "ended_at", "replay_from", "replay_until"):
            _iso(getattr(self, name), name)
        for name in ("wall_seconds", "sim_days"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
        for name in ("retrains", "promotions", "refusals"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0; got {value!r}")
        for key, result in self.series.items():
            _check_series(key, result)
        for i, event in enumerate(self.events):
            _check_event(event, i)

    # -- the file ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """What the JSON holds: plain values, floats rounded to 6 decimals."""
        plain: dict[str, Any] = _plain(asdict(self))
        return plain

    def to_json(self) -> str:
        """The report as stable JSON text (sorted keys, rounded floats, a final newline)."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ReplayReport:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"a replay report must be a JSON object; got {type(data).__name__}")
        names = {item.name for item in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"a replay report has no keys {unknown}; it has {sorted(names)}")
        missing = sorted(names - set(data))
        if missing:
            raise ValueError(f"the replay report lacks {missing}")
        return cls(**data)

    def write(self, path: Path) -> Path:
        """Write ``to_json()`` to ``path`` (a directory: ``path / REPORT_FILE``), atomically."""
        path = Path(path)
        if path.is_dir():
            path = path / REPORT_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(self.to_json())
        os.replace(partial, path)
        return path

    @classmethod
    def read(cls, path: Path) -> ReplayReport:
        return cls.from_json(Path(path).read_text())

    # -- the terminal -----------------------------------------------------------------------------

    def render(
        self,
        console: Console,
        *,
        max_events: int | None = None,
        hide: tuple[str, ...] = ("refusal", "validation"),
    ) -> None:
        """The summary line, a table per series and the events (the last ``max_events``), but
        those of the kinds in ``hide`` (one per regime and retrain: counted in a line; the JSON
        has each with its reason)."""
        console.print(
            f"replay {_when(self.replay_from)} to {_when(self.replay_until)} UTC: "
            f"{self.sim_days:,.1f} simulated days in {self.wall_seconds:,.0f} s "
            f"({self.retrains:,} retrains, {self.promotions:,} promotions, "
            f"{self.refusals:,} refusals)"
        )
        for name in sorted(self.series):
            console.print(series_table(name, self.series[name], self.replay_from))
        shown = [e for e in self.events if e["kind"] not in hide]
        console.print(events_table(shown, max_events))
        hidden = {kind: sum(e["kind"] == kind for e in self.events) for kind in hide}
        if any(hidden.values()):
            counts = ", ".join(f"{n:,} {kind} events" for kind, n in hidden.items())
            console.print(f"not shown: {counts}; replay_report.json lists each with its numbers")


def _when(text: str) -> str:
    """An ISO moment as ``YYYY-MM-DD HH:MM`` (a bare date stays a date)."""
    moment = datetime.fromisoformat(text)
    return text if len(text) <= 10 else moment.strftime("%Y-%m-%d %H:%M")


def fmt_sharpe(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def fmt_pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2%}"


def fmt_share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def fmt_number(value: Any) -> str:
    """A number of an event, short: ints with thousands separators, floats to 3 decimals."""
    if value is None:
        return "-"
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()  # a numpy scalar
    if isinstance(value, bool | str):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def row_label(row: str, result: dict[str, Any]) -> str:
    if row == "sma_cross":
        return f"SMA {result['sma_cross']['fast']}/{result['sma_cross']['slow']}"
    return {"served": "served", "buy_and_hold": "buy & hold"}[row]


def series_table(name: str, result: dict[str, Any], replay_from: str) -> Table:
    """One series: served, buy & hold and the SMA crossover x Sharpe, return, drawdown, exposure."""
    sma = result["sma_cross"]
    unanswered = result["unanswered"]
    table = Table(
        "", "Sharpe", "return", "max drawdown", "exposure",
        title=f"{name}: {result['bars']:,} bars"
        + (f", {unanswered:,} unanswered (flat)" if unanswered else ""),
        caption=f"position held close to close, {result.get('fee_bps', 10.0):g} bps per unit of "
        f"change; SMA {sma['fast']}/{sma['slow']} chosen before {_when(replay_from)} "
        f"(Sharpe {fmt_sharpe(sma.get('train_sharpe'))} there)",
    )  # fmt: skip
    for column in table.columns[1:]:
        column.justify = "right"
    for row in SERIES_ROWS:
        stats = result[row]
        table.add_row(
            row_label(row, result),
            fmt_sharpe(stats["sharpe"]),
            fmt_pct(stats["total_return"]),
            fmt_pct(stats["max_drawdown"]),
            fmt_share(stats["exposure"]),
        )
    return table


def events_table(events: list[dict[str, Any]], max_events: int | None = None) -> Table:
    """The events in order (the last ``max_events`` when given), their numbers in short form."""
    shown = events if max_events is None else events[len(events) - min(max_events, len(events)) :]
    hidden = len(events) - len(shown)
    table = Table(
        "at (UTC)", "kind", "subject", "numbers",
        title=f"{len(events):,} events" if events else "no events",
        caption=f"the first {hidden:,} are in {REPORT_FILE}" if hidden else None,
    )  # fmt: skip
    for event in shown:
        numbers = event["numbers"]
        table.add_row(
            _when(event["at"]),
            event["kind"],
            event["subject"],
            ", ".join(f"{key} {fmt_number(numbers[key])}" for key in sorted(numbers)),
        )
    return table

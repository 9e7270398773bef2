"""The live ensemble: per-regime champions and the mother brain, loaded from the store, as pure code.

No Ray here (``serving.app`` is the Serve shell around it); everything is testable in-process.

**What is live.** :func:`ensemble_version` hashes the champion rows (``ChampionStore.champions()``:
run, agent, checkpoint hash, stage, inference config, Sharpe), the newest mother-brain version
under ``ai_models/mother_brain/`` and the store's regime rules: a promotion, a stage change, a
brain refit or new regime rules change it, which is what the Serve replicas poll for to hot swap.
:meth:`Ensemble.load` loads a consistent snapshot.

**Loading is weights only and verified.** A champion's checkpoint (absolute for evolution agents,
relative to the data root for Tune models) is hashed first; a file whose SHA-256 differs from the
row's ``checkpoint_sha256`` (or a row without one) is *refused*: logged, listed as unavailable with
the reason, and left out of the votes. Files load with ``torch.load(weights_only=True)``
(``agents.models.load_model``): no pickled code runs. That holds for every model family: a
LightGBM child's checkpoint holds its booster's model text as a tensor, parsed back by LightGBM.

**Who can vote.** Every specialty whose inputs the request's candles, the store and the
champion's run can provide; its features are computed by the very builders its training datasets
used (``agents.banks``, on ``market.features``), so a model sees what it was trained on; only the
bank of the model's ``feature_set`` is built (the same bars and values at the served rows as the
full dataset: ``agents.banks._only``), and only the last rows its windows read are assembled
(``agents.banks._tail``; the features still run over every candle). Scores come from
``agents.models.FrozenNet``, the model's eval forward in numpy (equal to torch's to float32
rounding); every family is called through the same predictor, ``agents.models.scorer`` (the
booster for ``gbm``, torch's eval forward for ``tcn``). A meta-labelling child (``primary``
gene) takes its rule's side at the candles it scores (``agents.training.meta_scores`` on the
request's closes, as in training). A model whose input width differs from the live features'
abstains with that reason:

- ``technical_analyst``, ``volume_hunter``: the candles alone;
- ``sentiment_scout``: the candles and the daily fear & greed (and social) series of its run's
  ``data`` config, read once at load, lagged one day as in training; it abstains when the value
  its last candle would read is older than ``max_input_age_days`` (default 2: a file that has
  ended, a collector that stopped), and its weight goes to the members that vote;
- ``market_scanner``: the candles and the store's candles of the other symbols of its run's
  panel over the same span, ending at the last candle (never later); a series outside its panel,
  or a panel symbol the store lacks at the last candle, and it abstains with the reason;
- ``whale_watcher`` (public trades) is listed as unavailable with that reason;
  ``rugpull_detector`` answers ``/v1/rugpull``; ``report_coordinator`` is the mother brain.

**Which symbols.** A member knows the symbols its model was trained on (``Member.symbols``: a
pooled model's checkpoint records them; a single-symbol model's run names the dataset it ate by
digest, ``RunRecord.dataset_digests``); ``/v1/models`` lists them. Asked about another symbol it
abstains: listed with vote 0, weight 0 and the reason naming the symbol and its symbols, never
applied silently. A member whose symbols are not recorded (``null``) votes on any symbol.

A champion in stage DECAY does not vote (a decaying live record is not trusted; a new champion
replaces it). A rug-pull champion in DECAY or RETIRED (its live AUC on the outcomes reported,
``serving.feedback.apply_rugpull_feedback``) does not answer ``/v1/rugpull``, which says why with
its live numbers.

**A prediction.** The live regime is ``market.regimes.regime_labels`` of the candles (store rules)
at the last candle, with its confidence. The champions of that regime score the last candles:
``score`` in [-1, 1] at the last one. Each member's **position** is its own position rule
(``agents.positions.PositionRule`` of its genome: threshold, hysteresis band, minimum hold,
quantized levels, volatility target; the threshold of the row's inference config overrides the
genome's ``threshold`` gene; a Tune model, judged by its inference config's plain threshold rule,
keeps that rule) replayed from flat over its scores, closes and ts of the last
``rule.warmup`` candles (one candle for the plain threshold rule, whose replay is exact; see
``agents.positions`` for what a finite replay means for a stateful rule), taken at the last
candle and times the ``size`` of the row's inference config (1 when it has none). A
``market_scanner`` trades, as in training, its score minus the mean score of its panel's symbols
at each timestamp (its ``score`` stays the model's own). Its ``vote`` is
the position's sign: with the plain rule, ``sign(score)`` when ``|score|`` exceeds the threshold.
Fewer candles than the warm-up replay what there is. Without a regime (fewer candles than the
regime window) or without a validated champion for the live regime the answer is direction 0
with the reason, never a guess. Weights are the champions' out-of-sample Sharpe in the regime
(negative read 0), normalized to sum 1; ``P = sum(w * position)`` is the ensemble's position.
The call is made by:

- the **mother brain** when its coordinator for the live regime can be fed: coordinators are
  trained on stacked member scores (``agents.banks.stacked_dataset``); a coordinator whose
  ``feature_set`` is ``consensus`` reads only ``consensus_mean`` and ``consensus_std`` of the
  member scores over its ``lookback`` bars, which the live champions provide. Its score and its
  own ``threshold`` gene make the direction (``combiner`` ``mother_brain:<version>``), confidence
  ``|brain score|``; the size comes from the members: ``position_size = max(0, direction * P)``
  (what the members hold in the brain's direction; 0 when they hold nothing that way);
- else (no brain, a coordinator that reads named members' scores, which are those of the run it
  was stacked on and not the live champions) the **Sharpe-weighted position**: direction
  ``sign(P)``, ``position_size = |P|``, score ``sum(w * score)``, confidence ``|sum(w * vote)|``.

``position_size`` is at most 1 and 0 when flat; ``direction * position_size`` is the position a
bot holds. With every member on the plain threshold rule and one ``size`` ``s``, ``P = s *
sum(w * vote)``: the vote of before.

**Rug pulls.** The ``rugpull_detector`` champion crowned by the classifier rules (its row of
regime ``ALL_REGIMES``, ``evolution.champions.decide_classifier``; a row of another regime, which
those rules never write, is listed as unavailable) scores a token's
18 raw features, transformed as ``agents.banks.rugpull_dataset`` does. The features that drove it
are the top 5 by ``|gradient x input|`` of the logit with respect to the *standardized* input
(``(x - mean) / std`` of the training rows): how far each feature sits from a typical token,
times how much the model's logit moves with it. A ``gbm`` rug-pull champion reports its
booster's own contributions instead (``pred_contrib``: SHAP values of the raw, transformed inputs,
which add up to the logit).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import numpy as np
import pandas as pd
import torch

from agents.banks import (
    RUGPULL_FEATURES,
    RUGPULL_HEAVY_TAILED,
    SOCIAL_STREAMS,
    DailySentiment,
    daily_sentiment,
    panel_dataset,
    sentiment_dataset,
)
from agents.child import file_sha256
from agents.dataset import Dataset
from agents.genome import Genome
from agents.models import ChildModel, ChildNet, GbmModel, Scorer, load_model, scorer
from agents.positions import PositionRule
from agents.scoring import auc_bounds
from agents.sources import DataSources
from agents.specialties import LiveInput, get_specialty
from agents.training import meta_scores, window_inputs
from evolution.champions import ClassifierPolicy, classifier_live_evidence
from market.regimes import REGIMES, RegimeRules, regime_labels
from market.sentiment import DAY_MS, read_sentiment
from market.series import CANDLE_COLUMNS, Candles, SeriesKey, candle_arrays, normalize_symbol
from serving.feedback import rugpull_live_record
from serving.schemas import (
    CandleRows,
    MemberOut,
    ModelEntry,
    ModelsResponse,
    PredictResponse,
    RegimeModels,
    RegimeOut,
    RugpullFeature,
    RugpullResponse,
    SignalOut,
)
from store.db import Store
from store.paths import DataRoot
from store.records.champions import ALL_REGIMES, ModelSource, RegimeBestRecord, Stage

__all__ = [
    "CheckpointRefused",
    "Ensemble",
    "Member",
    "brain_version",
    "candle_columns",
    "ensemble_version",
    "verified_model",
]

logger = logging.getLogger(__name__)

_VOTING_STAGES = (Stage.PAPER, Stage.MATURE)
_RUGPULL = "rugpull_detector"
_TOP_FEATURES = 5
#: Candle sets whose regime and features an Ensemble remembers (see ``_CandleWork``).
CANDLE_CACHE_SIZE = 64
#: Days after its newest value became known that a side input (the daily fear & greed) may be
#: used: one missed daily publication is tolerated, a file that has ended is not.
DEFAULT_MAX_INPUT_AGE_DAYS = 2.0
_CANDLE_COLUMNS = ("open", "high", "low", "close", "volume")
Vote = Literal[-1, 0, 1]
_T = TypeVar("_T")


class CheckpointRefused(ValueError):
    """A checkpoint that does not match its row (or cannot be read): it is never loaded."""


def verified_model(path: Path, sha256: str | None) -> tuple[ChildModel, dict[str, Any]]:
    """The model in ``path`` after its SHA-256 matched ``sha256``; CheckpointRefused otherwise."""
    if not sha256:
        raise CheckpointRefused(f"{path}: its row records no checkpoint_sha256 to check it against")
    if not path.is_file():
        raise CheckpointRefused(f"{path}: checkpoint file not found")
    actual = file_sha256(path)
    if actual != sha256:
        raise CheckpointRefused(
            f"{path}: SHA-256 {actual[:12]} does not match the row's {sha256[:12]}; refused"
        )
    try:
        return load_model(path)
    except Exception as exc:  # a damaged or foreign file is a refusal, never a crash
        raise CheckpointRefused(f"{path}: cannot load: {type(exc).__name__}: {exc}") from None


def brain_version(home: Path) -> str | None:
    """The newest mother brain under ``ai_models/mother_brain`` (by its ``created_at``), or None."""
    folder = DataRoot(Path(home)).mother_brain
    best: tuple[str, str] | None = None
    for stats in folder.glob("*/training_stats.json") if folder.is_dir() else ():
        try:
            created = str(json.loads(stats.read_text()).get("created_at", ""))
        except (OSError, ValueError):
            continue  # a brain being written: the next poll sees it whole
        key = (created, stats.parent.name)
        best = key if best is None or key > best else best
    return None if best is None else best[1]


def _row_key(row: RegimeBestRecord) -> list[Any]:
    return [row.run_id, row.specialty, row.regime, row.agent_id, row.checkpoint_sha256,
            row.stage, sorted(row.inference.items()), row.sharpe]  # fmt: skip


def _version(
    rows: Sequence[RegimeBestRecord], brain: str | None, rules: Mapping[str, RegimeRules],
    table: RegimeRules,
) -> str:  # fmt: skip
    judged = {run_id: found.digest() for run_id, found in sorted(rules.items())}
    payload = json.dumps([[_row_key(r) for r in rows], brain, judged, asdict(table)],
                         sort_keys=True, default=str)  # fmt: skip
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _judged_under(
    store: Store, rows: Sequence[RegimeBestRecord], table: RegimeRules
) -> dict[str, RegimeRules]:
    """The regime rules each champion's run was judged under, by run id: the run's stored rules
    (``RunRecord.regime_rules``), or the table's for a run from before runs stored them."""
    runs = store.runs
    out: dict[str, RegimeRules] = {}
    for run_id in sorted({row.run_id for row in rows}):
        run = runs.get_run(run_id)
        out[run_id] = (run.regime_rules if run is not None else None) or table
    return out


def ensemble_version(store: Store, home: str | Path) -> str:
    """Short hash of the champion rows, the rules their runs were judged under, the newest brain
    and the table's regime rules: what a replica polls to hot swap (a run under new rules is new
    rows; a table change alone renames the live regime of an older run's candles)."""
    rows = store.champions.champions()
    table = _regime_rules(store)
    return _version(rows, brain_version(Path(home)), _judged_under(store, rows, table), table)


@dataclass(frozen=True, eq=False)
class SentimentSource:
    """The daily series a sentiment_scout champion was trained with (its run's files).

    ``known_from``: when each fear & greed value became known (00:00 UTC of the day after its
    day: a value dated D reaches bars from D + 1 on), ascending. Training carries the last value
    forward to later bars, which is harmless inside a file and wrong past its end, where the
    member would vote from one frozen input for ever; so a candle more than ``max_age_days``
    after the value it would read makes the member abstain (:meth:`stale`), and its weight goes
    to the others.
    """

    key: str
    daily: DailySentiment  # its daily features, computed once at load
    known_from: np.ndarray
    max_age_days: float = DEFAULT_MAX_INPUT_AGE_DAYS

    def stale(self, last_ts: int) -> str | None:
        """Why the input a candle at ``last_ts`` (ms UTC) would read is too old, or None (also
        when it has none yet: the builder then says it needs more history)."""
        at = int(np.searchsorted(self.known_from, last_ts, side="right")) - 1
        if at < 0:
            return None
        age = (last_ts - int(self.known_from[at])) / DAY_MS
        if age < self.max_age_days:
            return None
        day = datetime.fromtimestamp((int(self.known_from[at]) - DAY_MS) / 1000, UTC)
        return (
            f"its fear & greed input is {age:.1f} days old at the last candle (the newest "
            f"value is of {day:%Y-%m-%d}); the maximum age is {self.max_age_days:g} days "
            "(serve option max_input_age_days)"
        )


@dataclass(frozen=True)
class PanelSource:
    """The panel a market_scanner champion ranks: its run's exchange, timeframe and symbols."""

    exchange: str
    timeframe: str
    symbols: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.exchange}:{self.timeframe}:{','.join(self.symbols)}"


Source = SentimentSource | PanelSource
#: The stored candles of a series with ``start_ms <= ts < end_ms`` (``CandleStore.load_candles``).
History = Callable[[SeriesKey, int, int], pd.DataFrame]


@dataclass(frozen=True, eq=False)
class Scored:
    """A member's scores of the last candles it could score and those candles' closes (oldest
    first, aligned): what its position rule replays."""

    scores: np.ndarray
    close: np.ndarray
    ts: np.ndarray
    # What its rule trades: the scores, or for a panel the scores minus the mean score of the
    # panel's symbols at each timestamp (as ``agents.scoring.score_panel`` trains it).
    traded: np.ndarray


@dataclass(frozen=True, eq=False)
class Member:
    """A loaded champion of one (specialty, regime); ``source``: what it reads beside candles."""

    row: RegimeBestRecord
    model: ChildModel
    genome: Genome
    generation: int
    threshold: float
    size: float
    source: Source | None = None
    # How its scores become its position (its genome's genes, the row's threshold).
    rule: PositionRule = field(default_factory=PositionRule)
    # The regime rules its run was judged under: it votes when they put the last candle in its
    # regime (``row.regime``), and its features are built with them.
    rules: RegimeRules = field(default_factory=RegimeRules)
    # The symbols its model was trained on (normalized; () when not recorded): asked about any
    # other symbol, it abstains naming both (``Ensemble.predict``).
    symbols: tuple[str, ...] = ()
    dataset_digest: str = ""  # of the dataset it trained on (its checkpoint's meta)
    net: Scorer = field(init=False, repr=False)  # the model's scores, in numpy

    def __post_init__(self) -> None:
        object.__setattr__(self, "net", scorer(self.model))

    @property
    def weight(self) -> float:
        return max(self.row.sharpe or 0.0, 0.0)


@dataclass(frozen=True, eq=False)
class _Coordinator:
    model: ChildModel
    lookback: int
    threshold: float
    net: Scorer = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "net", scorer(self.model))


def _gene(genome: Genome, name: str, default: Any) -> Any:
    return genome.as_dict().get(name, default)


def _entry(row: RegimeBestRecord, generation: int | None, threshold: float | None,
           live: bool, reason: str | None = None,
           symbols: tuple[str, ...] = ()) -> ModelEntry:  # fmt: skip
    metrics = row.metrics
    return ModelEntry(
        agent_id=row.agent_id, run_id=row.run_id, specialty=row.specialty, regime=row.regime,
        generation=generation, stage=row.stage, sharpe=row.sharpe, threshold=threshold,
        live=live, reason=reason, auc=metrics.get("auc"), auc_low=metrics.get("auc_low"),
        auc_high=metrics.get("auc_high"), symbols=list(symbols) or None,
    )  # fmt: skip


def _member_entry(member: Member) -> ModelEntry:
    return _entry(member.row, member.generation, member.threshold, True, None, member.symbols)


def _rugpull_stage_reason(store: Store, row: RegimeBestRecord) -> str:
    """Why a rug-pull champion in DECAY or RETIRED does not answer: its live record
    (``serving.feedback.apply_rugpull_feedback`` moved it there), with the numbers."""
    policy = ClassifierPolicy()  # the rules serving's feedback applies
    record = rugpull_live_record(store, row.run_id, row.agent_id)
    evidence = classifier_live_evidence(record, policy)
    _, high = auc_bounds(record.auc, record.auc_se, policy.level)
    below = f", upper bound {high:.3f} < {policy.auc_floor:.3f}" if high < policy.auc_floor else ""
    return (f"stage {row.stage}: only {' and '.join(_VOTING_STAGES)} champions answer; its "
            f"{evidence}{below}")  # fmt: skip


def _load_member(row: RegimeBestRecord, home: Path) -> Member:
    if row.checkpoint_path is None:
        raise CheckpointRefused("its row has no checkpoint_path")
    model, meta = verified_model(
        DataRoot(home).stored_file(row.checkpoint_path), row.checkpoint_sha256
    )
    if meta.get("specialty") != row.specialty:
        raise CheckpointRefused(
            f"checkpoint is a {meta.get('specialty')!r} model; the row is {row.specialty!r}"
        )
    genome = Genome.from_json(meta["genome"])
    default = 0.5 if get_specialty(row.specialty).task == "classify" else 0.0
    threshold = float(row.inference.get("threshold", _gene(genome, "threshold", default)))
    # A Tune model was judged by its inference config's positions (the plain threshold rule,
    # ``agents.inference``), not by its genome's position genes: it is served as judged.
    tuned = row.source == ModelSource.TUNE
    rule = PositionRule(threshold) if tuned else PositionRule.from_genome(genome, default)
    rule = replace(rule, threshold=threshold)
    symbols = tuple(normalize_symbol(str(v)) for v in meta.get("symbols") or ())
    return Member(row, model, genome, int(meta.get("generation", 0)), threshold,
                  float(row.inference.get("size", 1.0)), rule=rule, symbols=symbols,
                  dataset_digest=str(meta.get("dataset_digest", "")))  # fmt: skip


def _trained_on(member: Member, store: Store) -> tuple[str, ...]:
    """The symbols ``member`` was trained on: its checkpoint's (a pooled model records them),
    else, for a model of one series' candles, the series of its run's dataset with its digest
    (``RunRecord.dataset_digests``, names as ``SeriesKey.file_stem``); () when not recorded."""
    if member.symbols or get_specialty(member.row.specialty).live is not LiveInput.CANDLES:
        return member.symbols
    run = store.runs.get_run(member.row.run_id)
    data = (run.config.get("data") if run is not None else None) or {}
    if run is None or not data or not member.dataset_digest:
        return ()
    names = {key.split("/", 1)[-1] for key, digest in run.dataset_digests.items()
             if digest == member.dataset_digest}  # fmt: skip
    try:
        spec = DataSources.from_config(store, data, member.rules, where=f"run {run.run_id} data")
    except ValueError:  # a data spec this version cannot read: the symbols are not recorded
        return ()
    return tuple(normalize_symbol(s) for s in spec.symbols if spec.key(s).file_stem in names)


def _source(
    row: RegimeBestRecord,
    store: Store,
    sentiment: dict[str, SentimentSource],
    max_age_days: float = DEFAULT_MAX_INPUT_AGE_DAYS,
    rules: RegimeRules = RegimeRules(),
) -> Source | None:
    """What ``row``'s specialty reads beside the candles, from its run's ``data`` config read as
    the run's data spec (``DataSources.from_config`` with the ``rules`` the run was judged under;
    ValueError naming what is missing); ``sentiment`` shares the files' frames across members."""
    live = get_specialty(row.specialty).live
    if live not in (LiveInput.DAILY_SENTIMENT, LiveInput.PANEL):
        return None
    run = store.runs.get_run(row.run_id)
    data = (run.config.get("data") if run is not None else None) or {}
    if not data:
        raise ValueError(f"its run {row.run_id!r} records no data sources (evolve.data)")
    # The run's data spec, typed as the run built its datasets (and labelled with its rules).
    spec = DataSources.from_config(store, data, rules, where=f"run {row.run_id} data")
    if live is LiveInput.PANEL:
        return PanelSource(spec.exchange, spec.timeframe,
                           tuple(normalize_symbol(s) for s in spec.symbols))  # fmt: skip
    fear_greed, social = spec.fear_greed, spec.social_sentiment
    if not fear_greed:
        raise ValueError(f"its run {row.run_id!r} names no fear_greed file")
    key = f"{fear_greed}|{social}"
    if key not in sentiment:
        for path in (fear_greed, social):
            if path and not Path(path).is_file():
                raise ValueError(f"its run's sentiment file {path} is not on this machine")
        streams = ({stream: read_sentiment(social, label=stream) for stream in SOCIAL_STREAMS}
                   if social else None)  # fmt: skip
        frame = read_sentiment(fear_greed)
        known_from = frame["ts"].to_numpy(dtype=np.int64)[frame["value"].notna()] + DAY_MS
        sentiment[key] = SentimentSource(key, daily_sentiment(frame, streams), known_from,
                                         max_age_days)  # fmt: skip
    return sentiment[key]


def _load_brain(home: Path, version: str | None) -> dict[str, _Coordinator]:
    """The feedable coordinators of the brain ``version`` by regime (see the module doc)."""
    if version is None:
        return {}
    folder = DataRoot(home).mother_brain / version
    stats = json.loads((folder / "training_stats.json").read_text())
    out: dict[str, _Coordinator] = {}
    for regime, info in (stats.get("champions") or {}).items():
        if not info.get("checkpoint"):
            continue
        try:
            model, meta = verified_model(folder / info["checkpoint"], info.get("checkpoint_sha256"))
        except CheckpointRefused as exc:
            logger.warning("mother brain %s, %s: %s", version, regime, exc)
            continue
        genome = Genome.from_json(meta["genome"])
        lookback = int(_gene(genome, "lookback", 1))
        if _gene(genome, "feature_set", "all") == "consensus" and model.n_inputs == 2 * lookback:
            out[regime] = _Coordinator(model, lookback, float(_gene(genome, "threshold", 0.0)))
    return out


def _rugpull_columns(genome: Genome) -> list[tuple[str, str]]:
    """``(raw feature, dataset column)`` of the model's feature set, in the dataset's order."""
    chosen = _gene(genome, "feature_set", "all")
    keys = list(RUGPULL_FEATURES) if chosen == "all" else [chosen]
    return [(raw, f"{raw}_log1p" if raw in RUGPULL_HEAVY_TAILED else raw)
            for key in keys for raw in RUGPULL_FEATURES[key]]  # fmt: skip


def _attribution(model: ChildModel, x: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-input attribution of a rug-pull model's logit for one token, and its probability:
    ``gradient x standardized input`` for the MLP, the booster's contributions for ``gbm``."""
    if isinstance(model, GbmModel):
        contributions, expected = model.contributions(x.astype(np.float32))
        logit_value = float(contributions.sum() + expected)
        return contributions, 0.5 * (1.0 + math.tanh(logit_value / 2.0))  # sigmoid, no overflow
    if not isinstance(model, ChildNet):
        raise ValueError(f"a rugpull_detector model is an mlp or a gbm; got {model.family!r}")
    z = ((torch.from_numpy(x.astype(np.float32)) - model.in_mean) / model.in_std).detach()
    z.requires_grad_(True)
    logit = model.body(z.unsqueeze(0)).squeeze()
    logit.backward()
    assert z.grad is not None
    attribution = (z.grad * z).detach().numpy().astype(np.float64)
    return attribution, float(torch.sigmoid(logit.detach()))


def _live_rules(voting: Sequence[Member], table: RegimeRules) -> RegimeRules:
    """The rules that name the live regime of a request: those of the newest voting champion's
    run (a run under new rules takes over when it crowns), else the table's."""
    if not voting:
        return table
    newest = max(voting, key=lambda m: (str(m.row.updated_at), m.row.run_id))
    return newest.rules


def _regime_rules(store: Store) -> RegimeRules:
    try:
        return store.regimes.regime_rules()
    except ValueError:  # no regime_definitions rows yet: the defaults
        return RegimeRules()


def _sign(value: float) -> Vote:
    return 1 if value > 0 else (-1 if value < 0 else 0)


def _candles_key(candles: Mapping[str, np.ndarray], series: SeriesKey) -> bytes:
    """A digest of exactly what the features read: the series and its ``ts`` and OHLCV values."""
    digest = hashlib.blake2b(str(series).encode(), digest_size=20)
    for column in CANDLE_COLUMNS:
        digest.update(np.ascontiguousarray(candles[column]).tobytes())
    return digest.digest()


class _CandleWork:
    """What a candle set of one series means, whoever asks: its live regime and each
    specialty's dataset.

    Pure functions of (candles, series, rules, sources), so remembering them changes no answer;
    it only spares the feature pipeline (``benchmarks/serve.py`` prints its in-process cost) when
    the same candles come again: bots polling one series at one bar, a retry, a batch of equal
    requests. Datasets are built on first use (only the live regime's specialties need them).
    """

    def __init__(
        self,
        candles: Mapping[str, np.ndarray],
        series: SeriesKey,
        rules: RegimeRules,
        history: History | None,
    ) -> None:
        labels, confidence = regime_labels(candles, series.timeframe, rules)
        self._regimes = labels  # handed to the dataset builders
        self.regime: str | None = str(labels[-1]) or None
        self.confidence = float(confidence[-1]) if self.regime else None
        self._candles = candles
        self._series = series
        self._rules = rules
        self._history = history
        self._datasets: dict[tuple[str, str, str, int | None], Dataset | str] = {}
        self._made: dict[tuple[Any, ...], Any] = {}  # inputs and scores (or why not)
        self._lock = threading.Lock()

    def dataset(
        self,
        specialty: str,
        source: Source | None = None,
        feature_set: str | None = None,
        tail: int | None = None,
    ) -> Dataset | str:
        """The specialty's dataset of the candles (and ``source``), with only the bank of
        ``feature_set`` (None: every bank; see ``agents.banks._only``) and only the last ``tail``
        rows when they are complete (``agents.banks._tail``; None: every row), or why it cannot
        be built. A panel is built whole (it is not on the hot path)."""
        if isinstance(source, PanelSource):
            feature_set, tail = None, None
        key = (specialty, source.key if source is not None else "", feature_set or "all", tail)
        with self._lock:  # one build per specialty and set, even when a batch asks at once
            if key not in self._datasets:
                try:
                    self._datasets[key] = self._build(specialty, source, feature_set, tail)
                except ValueError as exc:
                    self._datasets[key] = f"{specialty}: {exc}"
            return self._datasets[key]

    def _build(
        self, specialty: str, source: Source | None, feature_set: str | None, tail: int | None
    ) -> Dataset | str:
        timeframe, rules = self._series.timeframe, self._rules
        live_dataset = get_specialty(specialty).live_dataset  # set for live inputs CANDLES
        if live_dataset is not None:
            return live_dataset(self._candles, name="live", timeframe=timeframe, rules=rules,
                                regimes=self._regimes, feature_set=feature_set,
                                tail=tail)  # fmt: skip
        if isinstance(source, SentimentSource):
            stale = source.stale(int(self._candles["ts"][-1]))
            if stale is not None:
                return f"{specialty}: {stale}"
            return sentiment_dataset(self._candles, source.daily, name="live",
                                     timeframe=timeframe, rules=rules, regimes=self._regimes,
                                     feature_set=feature_set, tail=tail)  # fmt: skip
        if isinstance(source, PanelSource):
            return self._panel(source)
        return f"{specialty}: nothing builds its features from candles"

    def _panel(self, panel: PanelSource) -> Dataset | str:
        """The panel of the request's candles and the store's candles of the other symbols over
        the same span (up to the last candle: never later)."""
        series = self._series
        if (series.exchange, series.timeframe) != (panel.exchange, panel.timeframe) or (
            series.symbol not in panel.symbols
        ):
            return (f"market_scanner: ranks {', '.join(panel.symbols)} on {panel.exchange} "
                    f"{panel.timeframe}; {series} is not in its panel")  # fmt: skip
        if self._history is None:
            return "market_scanner: no store to read the panel's other symbols from"
        ts = self._candles["ts"]
        first, last = int(ts[0]), int(ts[-1])
        frames: dict[str, pd.DataFrame] = {}
        for symbol in panel.symbols:
            if symbol == series.symbol:
                frames[symbol] = pd.DataFrame(self._candles)
                continue
            other = self._history(SeriesKey(panel.exchange, symbol, panel.timeframe), first,
                                  last + 1)  # fmt: skip
            if other.empty or int(other["ts"].iloc[-1]) != last:
                return (f"market_scanner: the store has no {symbol} {panel.timeframe} candle at "
                        f"{last} (the panel ranks every symbol at the last candle)")  # fmt: skip
            frames[symbol] = other
        return panel_dataset(frames, name="live", timeframe=panel.timeframe, rules=self._rules)

    def _remember(self, key: tuple[Any, ...], make: Callable[[], _T]) -> _T:
        """``make()`` once per key for everyone asking about these candles: read it, never write
        it (made outside the lock, so other keys go on; a race makes it twice, keeps one)."""
        with self._lock:
            found = self._made.get(key)
        if found is not None:
            return cast(_T, found)
        made = make()
        with self._lock:
            return cast(_T, self._made.setdefault(key, made))

    def inputs(
        self, specialty: str, genome: Genome, depth: int, source: Source | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | str:
        """The model inputs (``window_inputs``) of the last ``depth`` rows of the series in the
        specialty's dataset for ``genome``, those rows' closes and ts (the rows with a full
        window when fewer have one), or why not."""
        genes = genome.as_dict()
        key = (specialty, source.key if source is not None else "",
               repr(genes.get("feature_set")), repr(genes.get("lookback")), depth)  # fmt: skip
        return self._remember(key, lambda: self._inputs(specialty, genome, depth, source))

    def _inputs(
        self, specialty: str, genome: Genome, depth: int, source: Source | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | str:
        genes = genome.as_dict()
        one, lookback = genes.get("feature_set"), genes.get("lookback", 1)
        tail = depth + lookback - 1 if isinstance(lookback, int) and lookback >= 1 else None
        ds = self.dataset(specialty, source, None if one is None else str(one), tail)
        if isinstance(ds, str):
            return ds
        rows = self.rows(ds)[-depth:]
        if len(rows) == 0 or int(ds.ts[rows[-1]]) != int(self._candles["ts"][-1]):
            return f"{specialty}: the last candle's features need more history"
        assert ds.close is not None  # every candle dataset carries its closes
        try:
            return window_inputs(ds, genome, rows), ds.close[rows], ds.ts[rows]
        except ValueError:
            pass
        # Not enough history for the depth: the rows that have a full window (a suffix: the
        # features are finite after their warm-up) still score, down to the last candle alone.
        low, high = 0, len(rows) - 1
        try:
            window_inputs(ds, genome, rows[high:])
        except ValueError as exc:
            return str(exc)
        while low < high:
            middle = (low + high) // 2
            try:
                window_inputs(ds, genome, rows[middle : middle + 1])
                high = middle
            except ValueError:
                low = middle + 1
        return window_inputs(ds, genome, rows[low:]), ds.close[rows[low:]], ds.ts[rows[low:]]

    def scores(self, member: Member, depth: int) -> Scored | str:
        """The member's scores of the last ``depth`` candles and their closes, or why it
        abstains. Remembered: a member's model is fixed for the life of the ensemble this cache
        belongs to, so the same candles again cost no forward pass."""
        return self._remember(("scores", id(member), depth), lambda: self._scores(member, depth))

    def _scores(self, member: Member, depth: int) -> Scored | str:
        found = self.inputs(member.row.specialty, member.genome, depth, member.source)
        if isinstance(found, str):
            return found
        x, close, ts = found
        if x.shape[1] != member.model.n_inputs:
            return (f"the live features are {x.shape[1]} inputs, its model reads "
                    f"{member.model.n_inputs}: not what it was trained on")  # fmt: skip
        scores = member.net(x).astype(np.float64)
        # The rows scored are the last candles (the last one exactly: inputs() checks it).
        scores = meta_scores(member.genome, self._candles["close"], scores)
        if not np.isfinite(scores).all():
            return "non-finite score"
        traded = scores
        if isinstance(member.source, PanelSource):
            relative = self._relative(member, ts)
            if isinstance(relative, str):
                return relative
            traded = relative
        return Scored(scores, np.asarray(close, dtype=np.float64), np.asarray(ts, dtype=np.int64),
                      traded)  # fmt: skip

    def _relative(self, member: Member, ts: np.ndarray) -> np.ndarray | str:
        """The member's scores of the request's symbol at ``ts`` minus the mean score of the
        panel's symbols at each of them (the panel is built whole, and cached)."""
        ds = self.dataset(member.row.specialty, member.source)
        if isinstance(ds, str):
            return ds
        rows = np.flatnonzero(np.isin(ds.ts, ts))
        try:
            scores = member.net(window_inputs(ds, member.genome, rows)).astype(np.float64)
        except ValueError as exc:
            return f"{member.row.specialty}: the panel's symbols cannot all be scored: {exc}"
        _, at = np.unique(ds.ts[rows], return_inverse=True)
        relative = scores - (np.bincount(at, scores) / np.bincount(at))[at]
        mine = self.rows(ds)
        return relative[np.isin(rows, mine)]

    def rows(self, ds: Dataset) -> np.ndarray:
        """The dataset rows of the request's series (a panel's rows of its symbol)."""
        if ds.group is None:
            return np.arange(ds.n_rows)
        return np.flatnonzero(ds.group == ds.group_names.index(self._series.symbol))


class _CandleCache:
    """A small thread-safe LRU of ``_CandleWork`` by candle digest."""

    def __init__(self, size: int = CANDLE_CACHE_SIZE) -> None:
        self._size = size
        self._items: OrderedDict[bytes, _CandleWork] = OrderedDict()
        self._lock = threading.Lock()

    def work(
        self,
        candles: Mapping[str, np.ndarray],
        series: SeriesKey,
        rules: RegimeRules,
        history: History | None,
    ) -> _CandleWork:
        key = _candles_key(candles, series) + rules.digest().encode()
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        fresh = _CandleWork(candles, series, rules, history)  # outside the lock: others go on
        with self._lock:
            found = self._items.setdefault(key, fresh)
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return found


@dataclass(frozen=True, eq=False)
class Ensemble:
    """A consistent snapshot of what is live; build it with :meth:`load`."""

    version: str
    brain_version: str | None
    members: dict[str, tuple[Member, ...]]  # regime -> voting champions
    unavailable: tuple[ModelEntry, ...]
    rugpull_member: Member | None
    coordinators: dict[str, _Coordinator]
    rules: RegimeRules = field(default_factory=RegimeRules)
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    history: History | None = field(default=None, repr=False)
    _cache: _CandleCache = field(default_factory=_CandleCache, repr=False)

    @classmethod
    def load(
        cls,
        store: Store,
        home: str | Path,
        *,
        max_input_age_days: float = DEFAULT_MAX_INPUT_AGE_DAYS,
    ) -> Ensemble:
        """The live snapshot; ``store`` also answers the panel's other symbols at predict time.
        ``max_input_age_days``: how old a sentiment member's daily input may be at the last
        candle before it abstains (:class:`SentimentSource`)."""
        home = Path(home)
        sentiment: dict[str, SentimentSource] = {}
        rows = store.champions.champions()
        brain = brain_version(home)
        table = _regime_rules(store)
        judged = _judged_under(store, rows, table)
        members: dict[str, list[Member]] = {regime: [] for regime in REGIMES}
        unavailable: list[ModelEntry] = []
        rugpull: list[Member] = []
        for row in rows:
            try:
                specialty = get_specialty(row.specialty)  # a plug-in loads by REDLINE_SPECIALTIES
            except ValueError as exc:
                unavailable.append(_entry(row, None, None, False, f"refused: {exc}"))
                continue
            fed = specialty.votes or specialty.live is LiveInput.TOKENS  # tokens: /v1/rugpull
            reason = None if fed else specialty.live_reason
            if row.stage not in _VOTING_STAGES:
                reason = f"stage {row.stage}: only {' and '.join(_VOTING_STAGES)} champions vote"
                if row.specialty == _RUGPULL:
                    reason = _rugpull_stage_reason(store, row)
            if reason is not None:
                unavailable.append(_entry(row, None, None, False, reason))
                continue
            try:
                source = _source(row, store, sentiment, max_input_age_days, judged[row.run_id])
                member = replace(_load_member(row, home), source=source, rules=judged[row.run_id])
                member = replace(member, symbols=_trained_on(member, store))  # after the rules
            except (CheckpointRefused, ValueError, KeyError, OSError) as exc:
                logger.error("champion %s (%s/%s) refused: %s", row.model, row.specialty,
                             row.regime, exc)  # fmt: skip
                unavailable.append(_entry(row, None, None, False, f"refused: {exc}"))
                continue
            if row.specialty == _RUGPULL:
                if row.regime != ALL_REGIMES:  # not crowned by the classifier rules
                    unavailable.append(_entry(row, member.generation, member.threshold, False,
                                              f"not crowned by the classifier rules (its regime "
                                              f"is {row.regime!r}, not {ALL_REGIMES!r})"))  # fmt: skip
                    continue
                rugpull.append(member)
            elif row.regime in members:
                members[row.regime].append(member)
        # At most one: one champion per (specialty, regime) is the store's invariant.
        best_rugpull = rugpull[0] if rugpull else None
        voting = [m for found in members.values() for m in found]
        return cls(
            version=_version(rows, brain, judged, table),
            brain_version=brain,
            members={regime: tuple(found) for regime, found in members.items()},
            unavailable=tuple(unavailable),
            rugpull_member=best_rugpull,
            coordinators=_load_brain(home, brain),
            rules=_live_rules(voting, table),
            history=store.candles.load_candles,
        )

    # -- predict ---------------------------------------------------------------------------------

    def predict(
        self,
        candles: Candles,
        *,
        exchange: str,
        symbol: str,
        timeframe: str,
        request_id: str,
    ) -> PredictResponse:
        """The ensemble's call on the last of ``candles`` (a candle frame or its columns as
        arrays, :func:`candle_columns`; oldest first)."""
        columns = candle_arrays(candles)
        last_ts = int(columns["ts"][-1])
        series = SeriesKey(exchange, symbol, timeframe)
        work = self._cache.work(columns, series, self.rules, self.history)
        name, confidence = work.regime, work.confidence
        base = {
            "request_id": request_id, "as_of": last_ts, "exchange": exchange,
            "symbol": symbol, "timeframe": timeframe, "model_version": self.version,
            "regime": RegimeOut(name=name, confidence=confidence),
        }  # fmt: skip

        def flat(reason: str, members: list[MemberOut] | None = None) -> PredictResponse:
            signal = SignalOut(direction=0, score=0.0, confidence=0.0, reason=reason)
            return PredictResponse(**base, signal=signal, position_size=0.0,
                                   members=members or [], combiner="none")  # fmt: skip

        if name is None:
            window = self.rules.window
            return flat(f"no regime: the candles do not cover the {window} regime window yet "
                        f"({len(columns['ts'])} candles); send more history")  # fmt: skip
        champions = self._voting(name, work, columns, series)
        if not champions:
            return flat(f"no validated champion for the live regime {name}")
        asked = normalize_symbol(symbol)
        elsewhere = [m for m, _ in champions if m.symbols and asked not in m.symbols]
        abstained = [MemberOut(
            agent_id=m.row.agent_id, run_id=m.row.run_id, specialty=m.row.specialty,
            regime=m.row.regime, generation=m.generation, vote=0, score=0.0, weight=0.0,
            position=0.0, symbols=list(m.symbols), reason=f"trained on {', '.join(m.symbols)}, not {asked}: "
            "a model is not applied to a symbol it was not trained on",
        ) for m in elsewhere]  # fmt: skip
        champions = [(m, w) for m, w in champions if m not in elsewhere]
        if not champions:
            return flat(f"no champion of {name} was trained on {asked}", abstained)
        # The brain was fit on one run's members, judged under that run's rules (the live ones).
        same_rules = all(member.rules == self.rules for member, _ in champions)
        coordinator = self.coordinators.get(name) if same_rules else None
        depth = coordinator.lookback if coordinator else 1
        scored, notes = self._score(champions, depth)
        if not scored:
            return flat(f"no champion of {name} could score these candles: {'; '.join(notes)}",
                        abstained)  # fmt: skip
        total = sum(m.weight for m, _ in scored)
        if total <= 0:
            return flat(f"no champion of {name} has a positive out-of-sample Sharpe")
        weights = [m.weight / total for m, _ in scored]
        outs = []
        votes: list[Vote] = []
        held: list[float] = []
        for (member, found), weight in zip(scored, weights, strict=True):
            score = float(found.scores[-1])
            mine = member.size * float(member.rule.positions(
                found.traded, found.close, timeframe=series.timeframe, ts=found.ts)[-1])  # fmt: skip
            vote: Vote = _sign(mine)
            votes.append(vote)
            held.append(mine)
            outs.append(MemberOut(
                agent_id=member.row.agent_id, run_id=member.row.run_id,
                specialty=member.row.specialty, regime=member.row.regime,
                generation=member.generation,
                vote=vote, score=score, weight=weight, position=mine,
                symbols=list(member.symbols) or None,
            ))  # fmt: skip
        outs += abstained
        net = sum(w * p for w, p in zip(weights, held, strict=True))
        if coordinator is not None and all(len(f.scores) >= depth for _, f in scored):
            # (members, depth), oldest first
            matrix = np.vstack([f.scores[-depth:] for _, f in scored])
            x = np.column_stack([matrix.mean(axis=0), matrix.std(axis=0)]).reshape(1, -1)
            brain = float(coordinator.net(x)[0])
            direction = _sign(brain) if abs(brain) > coordinator.threshold else 0
            combiner, score, agreement = f"mother_brain:{self.brain_version}", brain, abs(brain)
            size = max(0.0, direction * net)
        else:
            agreement_signed = sum(w * v for w, v in zip(weights, votes, strict=True))
            direction, agreement = _sign(net), abs(agreement_signed)
            score = sum(w * float(f.scores[-1]) for (_, f), w in zip(scored, weights, strict=True))
            combiner, size = "sharpe_weighted_vote", abs(net)
        reason = None if direction else "the members' positions do not make a call"
        signal = SignalOut(direction=direction, score=float(np.clip(score, -1.0, 1.0)),
                           confidence=float(min(agreement, 1.0)), reason=reason)  # fmt: skip
        position = float(min(size, 1.0)) if direction else 0.0
        return PredictResponse(**base, signal=signal, position_size=position, members=outs,
                               combiner=combiner)  # fmt: skip

    def _voting(
        self, name: str, work: _CandleWork, columns: Mapping[str, np.ndarray], series: SeriesKey
    ) -> list[tuple[Member, _CandleWork]]:
        """The champions that vote on these candles, each with the candle work of its own rules:
        those of the live regime ``name`` judged under the live rules, then any judged under other
        rules whose own rules put the last candle in their regime."""
        out = [(m, work) for m in self.members.get(name, ()) if m.rules == self.rules]
        for found in self.members.values():
            for member in found:
                if member.rules == self.rules:
                    continue
                own = self._cache.work(columns, series, member.rules, self.history)
                if own.regime == member.row.regime:
                    out.append((member, own))
        return out

    @staticmethod
    def _score(
        champions: Sequence[tuple[Member, _CandleWork]], depth: int
    ) -> tuple[list[tuple[Member, Scored]], list[str]]:
        """Each champion's scores of the last ``max(depth, its rule's warmup)`` candles (fewer
        when it lacks history)."""
        scored: list[tuple[Member, Scored]] = []
        notes: list[str] = []
        for member, work in champions:
            found = work.scores(member, max(depth, member.rule.warmup))
            if isinstance(found, str):
                notes.append(f"{member.row.agent_id}: {found}")
            else:
                scored.append((member, found))
        return scored, notes

    # -- rug pulls -------------------------------------------------------------------------------

    def rugpull(self, features: Mapping[str, float]) -> RugpullResponse:
        """The rug-pull champion's probability for one token (ValueError naming a bad feature)."""
        member = self.rugpull_member
        if member is None:
            reason = "no validated rugpull_detector champion"
            for entry in self.unavailable:  # a champion that stopped answering: say why
                if entry.specialty == _RUGPULL and entry.regime == ALL_REGIMES:
                    reason += f": {entry.run_id}/{entry.agent_id} does not answer: {entry.reason}"
            return RugpullResponse(top_features=[], model_version=self.version,
                                   reason=reason)  # fmt: skip
        known = {raw for group in RUGPULL_FEATURES.values() for raw in group}
        unknown = sorted(set(features) - known)
        if unknown:
            raise ValueError(f"features: unknown feature {unknown[0]!r}; known: {sorted(known)}")
        columns = _rugpull_columns(member.genome)
        missing = [raw for raw, _ in columns if raw not in features]
        if missing:
            raise ValueError(f"features: missing {', '.join(missing)} (this model reads them)")
        raw_values = np.array([float(features[raw]) for raw, _ in columns])
        heavy = np.array([raw in RUGPULL_HEAVY_TAILED for raw, _ in columns])
        x = np.where(heavy, np.sign(raw_values) * np.log1p(np.abs(raw_values)), raw_values)
        attribution, probability = _attribution(member.model, x)
        order = np.argsort(-np.abs(attribution), kind="stable")[:_TOP_FEATURES]
        top = [RugpullFeature(name=columns[i][0], value=float(raw_values[i]),
                              attribution=float(attribution[i])) for i in order]  # fmt: skip
        return RugpullResponse(
            probability=probability, is_rugpull=probability > member.threshold,
            threshold=member.threshold, top_features=top, agent_id=member.row.agent_id,
            run_id=member.row.run_id, model_version=self.version,
        )  # fmt: skip

    # -- listing ---------------------------------------------------------------------------------

    def models(self, *, swaps: int = 0) -> ModelsResponse:
        """What is live, per regime, and what is not (with the reason)."""
        regimes = {}
        for regime in REGIMES:
            entries = [_member_entry(m) for m in self.members[regime]]
            combiner = ("none" if not entries  # nothing to combine: predict answers flat
                        else f"mother_brain:{self.brain_version}" if regime in self.coordinators
                        else "sharpe_weighted_vote")  # fmt: skip
            regimes[regime] = RegimeModels(members=entries, combiner=combiner)
        rug = self.rugpull_member
        return ModelsResponse(
            model_version=self.version, brain_version=self.brain_version,
            loaded_at=self.loaded_at.isoformat(), swaps=swaps, regimes=regimes,
            rugpull=None if rug is None else _member_entry(rug),
            unavailable=list(self.unavailable),
        )  # fmt: skip


def candle_columns(rows: Sequence[Sequence[float]]) -> dict[str, np.ndarray]:
    """The candle columns (``market.series.CANDLE_COLUMNS``: ``ts`` int64, OHLCV float64) of
    request rows, as arrays: what the dataset builders read, without a DataFrame (whose
    construction and column lookups cost more than the features of 500 candles). Timestamps come
    through float64, exact below 2**53 ms (``serving.schemas`` refuses larger ones). Validated
    request rows (``CandleRows``) hand over the array their validator made: no second copy."""
    values = rows.array if isinstance(rows, CandleRows) else np.array(rows, dtype=np.float64)
    values = values.reshape(len(rows), 6)
    columns = {"ts": values[:, 0].astype(np.int64)}
    for i, name in enumerate(_CANDLE_COLUMNS, start=1):
        columns[name] = np.ascontiguousarray(values[:, i])
    return columns

"""The rows of the population, of training, of the champions and of serving's feedback as frozen
dataclasses of plain Python values, one module per topic: what the repositories take and give.

- ``store.records.population``: ``RunRecord``, ``AgentRecord``, ``GenerationRecord``, ``KillRecord``
  (``RunStatus``, ``AgentStatus``, ``KillReason``);
- ``store.records.champions``: ``RegimeBestRecord``, ``PromotionRecord`` (``Stage``: the model
  lifecycle, ``PromotionDecision``, ``ModelSource``);
- ``store.records.training``: ``TrainingRunRecord``, ``InferenceBacktestRecord``,
  ``QueueItemRecord`` (``TrainingStatus``, ``QueueStatus``);
- ``store.records.trades``: ``PredictionMember``, ``PredictionRecord``, ``TradeRecord``,
  ``AttributionRecord`` (``TradeSide``);
- ``store.records.rugpulls``: ``RugpullAnswerRecord``, ``RugpullOutcomeRecord`` (the rug-pull
  detector's served answers and the tokens' outcomes);
- ``store.records.checks``: the checks they run when built.

Import each from its module (this package re-exports nothing). Statuses, stages and decisions are
``enum.StrEnum``s: a record holds the member, which equals its value string (what the database
stores), so ``record.stage == "PAPER"`` and ``Stage.PAPER`` are the same test.

One record per table (``runs``, ``agents``, ``generations``, ``kills``, ``regime_best_models``;
``training_runs``, ``inference_backtests``, ``training_queue``, ``promotions``; ``predictions``,
``trades``, ``trade_attributions``; ``rugpull_answers``, ``rugpull_outcomes``). Fields have the column names, except that the JSON text
columns ``config_json``, ``metrics_json``, ``per_regime_json``, ``inference_json``,
``before_json``, ``after_json`` and ``members_json`` are the decoded ``config``, ``metrics``,
``per_regime``, ``inference``, ``before``, ``after`` and ``members`` (a tuple of
``PredictionMember``); ``parents``, ``operators``, ``objectives``, ``hall_of_fame`` are tuples and
``dataset_digests`` a dict.
``genome_json`` stays text: it is the canonical JSON that ``genome_digest`` hashes
(``agents.genome.Genome.to_json`` / ``from_json``).

Records check themselves when built; errors name the record, the field and the value. Values are
normalized so that what goes in is what comes back on both backends: numpy numbers become Python
ones, and a non-finite Sharpe, drawdown, hit rate or fitness becomes None (SQLite stores NaN as
NULL; PostgreSQL would sort it above every number). JSON fields keep NaN and infinities as Python's
``json`` writes them (``NaN``, ``Infinity``): metrics such as a Sortino ratio can be infinite.

Timestamps (``created_at``, ``updated_at``, ``killed_at``, ``finished_at``) are stamped by the store
in UTC; leave them None when writing (``killed_at`` and ``finished_at`` may be given).
"""

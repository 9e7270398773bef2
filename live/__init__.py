"""The living loop: schedules, collect, backfill, label, auto-enable, retrain, judge, swap,
retention, status and the replay clock (``redline live``, ``redline status``)."""

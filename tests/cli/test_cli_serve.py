"""``redline serve`` on a store with nothing to serve says why before starting Ray or Serve."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.smoke import REPO


def test_serving_an_empty_store_is_refused_with_the_reason(tmp_path: Path) -> None:
    home = tmp_path / "redline_data"
    env = {**os.environ, "REDLINE_HOME": str(home), "COLUMNS": "400"}
    env.pop("REDLINE_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "cli", "serve", "--port", "8123"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    said = " ".join(done.stderr.split())
    assert (
        f"error: nothing to serve: the store sqlite:///{home}/redline.db has no champions: is "
        f"REDLINE_HOME ({home}) or REDLINE_DATABASE_URL the right one? (`redline evolve` crowns "
        "champions)"
    ) in said, said

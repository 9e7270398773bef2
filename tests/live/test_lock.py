"""One living loop per data root: a second is refused, naming the holder; a holder that dies,
even by SIGKILL, frees the root."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from live.lock import LiveLock, LiveLockedError
from tests.support.waiting import wait_for


def test_a_second_service_on_the_same_root_is_refused_naming_the_holder(tmp_path: Path) -> None:
    refused = rf'"pid": {os.getpid()}.*another REDLINE_HOME'
    with LiveLock(tmp_path), pytest.raises(LiveLockedError, match=refused):
        LiveLock(tmp_path).acquire()
    with LiveLock(tmp_path):  # released on exit: free again
        pass


def test_a_killed_holder_frees_the_root(tmp_path: Path) -> None:
    code = (
        "import sys, time; from pathlib import Path; from live.lock import LiveLock; "
        f"LiveLock(Path({str(tmp_path)!r})).acquire(); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LiveLockedError, match=rf'"pid": {holder.pid}'):
            LiveLock(tmp_path).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    lock = wait_for("the lock to be free", lambda: _try(tmp_path), timeout=10)
    lock.release()


def _try(home: Path) -> LiveLock | None:
    lock = LiveLock(home)
    try:
        lock.acquire()
    except LiveLockedError:
        return None
    return lock

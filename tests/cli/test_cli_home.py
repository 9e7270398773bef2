"""``redline`` with a data root it cannot use: exit 2 and one line naming the value, no folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cli.main import main


@pytest.mark.parametrize("command", [["db", "upgrade"], ["data", "list"], ["runs"]])
def test_a_remote_redline_home_exits_2_naming_it(
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REDLINE_HOME", "s3://bucket/redline")
    monkeypatch.setenv("REDLINE_DATABASE_URL", f"sqlite:///{tmp_path / 'db' / 'redline.db'}")
    monkeypatch.setattr(sys, "argv", ["redline", *command])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err == (
        "error: REDLINE_HOME must be a local path (a folder, or on a cluster a shared mount such "
        "as NFS at the same path on every node); got 's3://bucket/redline'. Remote data roots "
        "(s3://, gs://, hdfs://, ...) are not supported yet: they come with the multi-node issue"
    )
    assert list(tmp_path.iterdir()) == []  # no "s3:" folder, and no database either

"""Which database a Store opens, how its URL is shown, and the data root's layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from store.db import Store
from store.errors import StoreConnectionError
from store.paths import DataRoot, DataRootError, absolute_home, home_from_env
from store.urls import default_url, mask_url, normalize_url
from tests.store.conftest import BTC_1H, JAN_2020, real_candles


def test_unsupported_scheme_is_refused_with_the_password_masked() -> None:
    with pytest.raises(ValueError) as info:
        Store.open("mysql://root:hunter2@db.internal/redline")
    assert str(info.value) == (
        "REDLINE_DATABASE_URL must start with sqlite:/// or postgresql+psycopg://; "
        "got 'mysql://root:***@db.internal/redline'"
    )
    assert "hunter2" not in str(info.value)
    with pytest.raises(ValueError, match="REDLINE_DATABASE_URL must start with"):
        normalize_url("postgresql+psycopg2://u:p@h/db")


def test_postgres_spellings_become_psycopg() -> None:
    assert normalize_url("postgresql://u:p@h:5432/db") == "postgresql+psycopg://u:p@h:5432/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:////abs/redline.db") == "sqlite:////abs/redline.db"
    assert (
        mask_url("postgresql+psycopg://redline:s3cr%40t@h/db")
        == "postgresql+psycopg://redline:***@h/db"
    )


def test_default_is_sqlite_in_the_data_root(redline_home: Path) -> None:
    assert default_url() == f"sqlite:///{(redline_home / 'redline.db').resolve()}"
    with Store.open() as store:
        assert store.database.dialect == "sqlite"
        assert store.url_for_display == f"sqlite:///{(redline_home / 'redline.db').resolve()}"
        store.candles.write_candles(
            BTC_1H, real_candles(BTC_1H, JAN_2020, JAN_2020 + 3_600_000 * 24)
        )
    assert (redline_home / "redline.db").is_file()
    with Store.open(home=redline_home) as store:  # reopened: the candles are still there
        assert store.candles.series_info(BTC_1H) is not None


def test_environment_url_wins_over_home(
    redline_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere" / "x.db"
    monkeypatch.setenv("REDLINE_DATABASE_URL", f"sqlite:///{elsewhere}")
    with Store.open(home=redline_home):
        pass
    assert elsewhere.is_file()
    assert not (redline_home / "redline.db").exists()


REMOTE_REFUSED = (
    r"must be a local path \(a folder, or on a cluster a shared mount such as NFS at the same "
    r"path on every node\); got 's3://bucket/redline'\. Remote data roots \(s3://, gs://, "
    r"hdfs://, \.\.\.\) are not supported yet: they come with the multi-node issue$"
)


def test_a_remote_home_is_refused_before_any_database_is_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REDLINE_HOME=s3://... used to become a local folder "s3:"; it is refused, naming the
    variable and the value, with SQLite as with a database URL set."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REDLINE_DATABASE_URL", raising=False)
    monkeypatch.setenv("REDLINE_HOME", "s3://bucket/redline")
    with pytest.raises(DataRootError, match="^REDLINE_HOME " + REMOTE_REFUSED):
        Store.open()
    monkeypatch.setenv("REDLINE_DATABASE_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    with pytest.raises(DataRootError, match="^REDLINE_HOME " + REMOTE_REFUSED):
        DataRoot.from_env()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.postgres
def test_postgres_url_is_shown_without_its_password(store_pg_admin: tuple[object, str]) -> None:
    _, url = store_pg_admin
    # The throwaway server trusts loopback connections, so any password gets in.
    with_password = make_url(url).set(password="hunter2").render_as_string(hide_password=False)
    plain = with_password.replace("postgresql+psycopg://", "postgresql://")
    with Store.open(plain) as store:
        assert store.database.dialect == "postgresql"
        assert "hunter2" not in store.url_for_display and "***" in store.url_for_display
        assert "hunter2" not in repr(store)


def test_unreachable_postgres_names_the_masked_url() -> None:
    with pytest.raises(
        StoreConnectionError, match=r"postgresql\+psycopg://u:\*\*\*@127\.0\.0\.1:1/x"
    ) as info:
        Store.open("postgresql://u:hunter2@127.0.0.1:1/x")
    assert "hunter2" not in str(info.value)


def test_data_root_layout(tmp_path: Path) -> None:
    root = DataRoot(tmp_path / "home")
    assert root.playground("ta-0007") == tmp_path / "home" / "playground" / "ta-0007"
    assert root.training_db("volume_hunter") == tmp_path / "home" / "training_db" / "volume_hunter"
    assert root.checkpoints == tmp_path / "home" / "checkpoints"
    assert root.evolution_logs == tmp_path / "home" / "evolution_logs"
    assert root.mother_brain == tmp_path / "home" / "ai_models" / "mother_brain"
    assert (
        root.raw_data("binance", "btc-usdt")
        == tmp_path / "home" / "raw_data" / "binance" / "BTC-USDT"
    )
    assert root.db_file == tmp_path / "home" / "redline.db"
    assert not root.home.exists()
    assert root.ensure() is root
    for folder in (
        "playground",
        "training_db",
        "checkpoints",
        "evolution_logs",
        "ai_models/mother_brain",
        "raw_data",
    ):
        assert (root.home / folder).is_dir()
    with pytest.raises(ValueError, match=r"agent_id must be .*; got '\.\./escape'"):
        root.playground("../escape")


def test_data_root_from_env(redline_home: Path) -> None:
    assert DataRoot.from_env().home == redline_home


def test_a_relative_home_is_made_absolute_and_a_remote_one_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checkpoint paths under the home go into the database: a relative home (make demo's
    ./redline_data) would make them relative to whichever process wrote them."""
    monkeypatch.chdir(tmp_path)
    assert DataRoot(Path("redline_data")).checkpoints == tmp_path / "redline_data" / "checkpoints"
    monkeypatch.setenv("REDLINE_HOME", "data")
    assert home_from_env() == tmp_path / "data"
    with pytest.raises(DataRootError, match="^the data root " + REMOTE_REFUSED):
        absolute_home("s3://bucket/redline")


def test_a_remote_data_root_is_refused_never_made_a_local_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``DataRoot("s3://bucket/x").ensure()`` used to create ``./s3:/bucket/x``."""
    monkeypatch.chdir(tmp_path)
    for home in ("s3://bucket/redline", Path("s3://bucket/redline")):  # Path: "s3:/bucket/..."
        with pytest.raises(DataRootError, match=r"^the data root must be a local path"):
            DataRoot(home).ensure()  # type: ignore[arg-type]
    for url in ("gs://bucket/x", "hdfs://namenode/x", "file:///srv/redline"):
        with pytest.raises(DataRootError, match=f"got '{url}'"):
            DataRoot(url)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
    assert DataRoot(Path("nfs/redline")).home == tmp_path / "nfs" / "redline"  # a path still is


def test_a_stored_file_resolves_under_the_root_or_after_a_move(tmp_path: Path) -> None:
    root = DataRoot(tmp_path / "home")
    assert root.stored_file("checkpoints/tune/ab.pt") == root.checkpoints / "tune" / "ab.pt"
    old = tmp_path / "old-home" / "checkpoints" / "ta-g000-001_gen0.pt"
    assert root.stored_file(str(old)) == old  # nowhere to be found: the row's path as it is
    root.checkpoints.mkdir(parents=True)
    (root.checkpoints / old.name).write_bytes(b"")
    assert root.stored_file(str(old)) == root.checkpoints / old.name  # the root has moved

"""The data root's layout (``REDLINE_HOME``, default ``./redline_data``), as DESIGN.md draws it.

```
playground/<agent_id>/        performance.json, training_logs/, experiments/
training_db/<specialty>/      shared datasets (Parquet)
checkpoints/                  <agent_id>_gen<N>.pt
evolution_logs/               generation_<N>.json, kill_log.csv
ai_models/mother_brain/       versions, training_stats.json
raw_data/<exchange>/<symbol>/ candles as Parquet, when exported
redline.db                    the SQLite default
```

Only paths are computed here; nothing touches the disk except :meth:`DataRoot.ensure`. The data
root is a local path (on a cluster, a shared mount such as NFS): a URL such as ``s3://bucket/x`` is
refused with :class:`DataRootError`, since object-store data roots come with the multi-node issue.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from market.series import normalize_symbol

DEFAULT_HOME = Path("./redline_data")
DB_FILE_NAME = "redline.db"

REMOTE_SCHEMES = ("s3:", "gs:", "gcs:", "hdfs:")  # store.urls: SQLite cannot live there

# ``s3://bucket/x``, and what ``Path`` makes of it (``s3:/bucket/x``): a URL, not a folder. Two
# letters at least: ``C:/`` is a Windows drive.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")


class DataRootError(ValueError):
    """A data root Redline cannot use; the message names the setting, the value and what works."""


def local_home(home: str | os.PathLike[str], setting: str = "the data root") -> Path:
    """``home`` as a local path; a URL (``s3://``, ``gs://``, ``hdfs://``, ``file://``...) is
    refused naming ``setting`` (``REDLINE_HOME``, ``data.home``), never turned into a folder
    called ``s3:``. On a cluster the data root is a shared mount (NFS) every node sees at the
    same path; object-store data roots come with the multi-node issue."""
    text = os.fspath(home)
    if _URL.match(text):
        raise DataRootError(
            f"{setting} must be a local path (a folder, or on a cluster a shared mount such as "
            f"NFS at the same path on every node); got {text!r}. Remote data roots (s3://, "
            "gs://, hdfs://, ...) are not supported yet: they come with the multi-node issue"
        )
    return Path(text).expanduser()


def absolute_home(home: str | os.PathLike[str], setting: str = "the data root") -> Path:
    """A local data root made absolute against the working directory (a URL is refused, see
    :func:`local_home`).

    Paths under the data root are written into the database (checkpoints), so they must mean
    the same file to every process that reads them, whatever its working directory.
    """
    return local_home(home, setting).absolute()


# One path component made of safe characters: agent ids and specialties become folder names.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def _component(kind: str, value: str) -> str:
    if not _NAME.match(value) or ".." in value:
        raise ValueError(
            f"{kind} must be letters, digits, '_', '-', '.' or ':' (a single folder name); "
            f"got {value!r}"
        )
    return value


def home_from_env() -> Path:
    """``REDLINE_HOME`` when set, else ``./redline_data`` (a URL is refused naming REDLINE_HOME)."""
    env = os.environ.get("REDLINE_HOME")
    return absolute_home(env, "REDLINE_HOME") if env else absolute_home(DEFAULT_HOME)


@dataclass(frozen=True)
class DataRoot:
    """Where Redline keeps its files under one home folder."""

    home: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", absolute_home(self.home))

    @classmethod
    def from_env(cls) -> DataRoot:
        return cls(home_from_env())

    def playground(self, agent_id: str) -> Path:
        return self.home / "playground" / _component("agent_id", agent_id)

    def training_db(self, specialty: str) -> Path:
        return self.home / "training_db" / _component("specialty", specialty)

    @property
    def checkpoints(self) -> Path:
        return self.home / "checkpoints"

    @property
    def evolution_logs(self) -> Path:
        return self.home / "evolution_logs"

    @property
    def mother_brain(self) -> Path:
        return self.home / "ai_models" / "mother_brain"

    def raw_data(self, exchange: str, symbol: str) -> Path:
        """``raw_data/binance/BTC-USDT``: the symbol's slash cannot be part of a folder name."""
        folder = normalize_symbol(symbol).replace("/", "-")
        return self.home / "raw_data" / _component("exchange", exchange) / folder

    @property
    def db_file(self) -> Path:
        return self.home / DB_FILE_NAME

    def stored_file(self, name: str) -> Path:
        """A file a database row names: a relative path is under this data root; an absolute
        one from a data root that has moved is looked up under this one's ``checkpoints/``."""
        path = Path(name)
        if not path.is_absolute():
            return self.home / path
        if not path.exists():
            moved = self.checkpoints / path.name
            if moved.exists():
                return moved
        return path

    def ensure(self) -> DataRoot:
        """Create the base folders (not the per-agent or per-series ones); returns self."""
        for folder in (
            self.home,
            self.home / "playground",
            self.home / "training_db",
            self.checkpoints,
            self.evolution_logs,
            self.mother_brain,
            self.home / "raw_data",
        ):
            folder.mkdir(parents=True, exist_ok=True)
        return self

"""``validation:`` in configs/defaults.yaml: the plausibility limits import, the store and serving use."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.config import ConfigError, load_config
from market.validation import DEFAULT_PLAUSIBILITY, Plausibility


def test_the_yaml_defaults_are_the_codes_defaults() -> None:
    """One fact in two places (YAML for users, DEFAULT_PLAUSIBILITY for code without a config)."""
    assert load_config().validation.to_plausibility() == DEFAULT_PLAUSIBILITY


def test_a_file_sets_the_limits(tmp_path: Path) -> None:
    path = tmp_path / "loose.yaml"
    path.write_text("validation:\n  max_bar_move: 50\n")
    assert load_config(path).validation.to_plausibility() == Plausibility(max_bar_move=50.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_bar_move: 1", r"validation\.max_bar_move: Input should be greater than 1 \(got 1\)"),
        ("min_price: 0", r"validation\.min_price: Input should be greater than 0 \(got 0\)"),
        ("max_price: .inf", r"validation\.max_price: Input should be a finite number"),
        (
            "min_price: 5\n  max_price: 1",
            r"validation: Value error, validation\.min_price must be below "
            r"validation\.max_price; got 5\.0 >= 1\.0",
        ),
        ("max_move: 3", r"validation\.max_move: Extra inputs are not permitted"),
    ],
)
def test_bad_limits_name_the_key_and_the_value(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"validation:\n  {text}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path)

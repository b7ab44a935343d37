"""benchmarks/train_speed.py's --seed is checked when the command line is
parsed (issue 26, low 15), not after the data is loaded."""

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import train_speed  # noqa: E402


@pytest.mark.parametrize("seed", ["-1", "99999999999", str(2**32), "1.5", "x"])
def test_a_seed_numpy_refuses_is_a_usage_error_before_anything_loads(seed, capsys, monkeypatch):
    monkeypatch.setattr(train_speed, "load_split", lambda *a: pytest.fail("loaded data before checking --seed"))
    with pytest.raises(SystemExit) as exit_:
        train_speed.main(["--seed", seed, "--quick", "--standin"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith("must be a whole number from 0 to 4,294,967,295 (what numpy's random seed accepts)")
    assert "--seed" in err


def test_seeds_numpy_accepts_parse(capsys):
    assert train_speed.parse_args(["--seed", "0"]).seed == 0
    assert train_speed.parse_args(["--seed", str(2**32 - 1)]).seed == 2**32 - 1


def test_the_last_repeats_seed_must_be_valid_too(capsys):
    with pytest.raises(SystemExit) as exit_:
        train_speed.parse_args(["--seed", str(2**32 - 1), "--repeats", "2"])
    assert exit_.value.code == 2 and "the last repeat's seed" in capsys.readouterr().err

"""``benchmarks/run_hashes.py``: the before/after fingerprint check of seeded runs."""

from __future__ import annotations

import json

import pytest

from benchmarks import run_hashes


def test_same_code_same_fingerprint_and_a_change_is_caught(tmp_path, capsys):
    saved = tmp_path / "before.json"
    assert run_hashes.main(["--save", str(saved), "--cases", "rl-headroom"]) == 0
    data = json.loads(saved.read_text())
    fp = data["rl-headroom"]
    assert set(fp) == {"requests", "intervals", "summary", "num_requests", "num_intervals"}
    assert fp["num_requests"] > 0 and fp["num_intervals"] > 0
    assert not (tmp_path / "before.json.partial").exists()
    # a second run of the same seeded case reproduces every hash
    assert run_hashes.main(["--check", str(saved), "--cases", "rl-headroom"]) == 0
    assert "all 1 cases identical" in capsys.readouterr().out
    # a changed interval record is reported by name, with a non-zero exit
    data["rl-headroom"]["intervals"] = "0" * 16
    saved.write_text(json.dumps(data))
    assert run_hashes.main(["--check", str(saved), "--cases", "rl-headroom"]) == 1
    assert "rl-headroom: intervals changed" in capsys.readouterr().out


def test_compare_reports_missing_cases_and_changed_fields():
    before = {"a": {"requests": "x", "summary": "y"}}
    now = {"a": {"requests": "x", "summary": "z"}, "b": {"requests": "q"}}
    assert run_hashes.compare(before, now) == ["a: summary changed", "b: not in the saved file"]
    assert run_hashes.compare(now, now) == []


def test_bad_input_is_refused_before_any_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        run_hashes.main(["--save", str(tmp_path / "x.json"), "--cases", "quickstrat"])
    assert exc.value.code == 2
    assert "unknown case(s) ['quickstrat']" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SystemExit) as exc:
        run_hashes.main(["--check", str(tmp_path / "bad.json"), "--cases", "rl-headroom"])
    assert exc.value.code == 2 and "cannot read" in capsys.readouterr().err

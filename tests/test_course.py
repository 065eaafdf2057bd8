"""helpers.course: verdicts that read the same on every CPU, fast-mode notes, headline records, thread cap;
and scripts/run_course.py, which executes notebooks into a scratch folder and tabulates what they record."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from helpers import course

ROOT = Path(__file__).resolve().parents[1]


def test_agree_prints_the_tolerance_not_the_round_off():
    a = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    assert course.agree(a, a.double().numpy() + 3e-9, 1e-6) == "max |difference| ≤ 1e-06"
    assert course.agree(1.0, 1.0, 1e-12, what="error") == "error ≤ 1e-12"
    assert course.within(2.2e-16, 1e-12) == "max |difference| ≤ 1e-12"
    assert course.within(torch.tensor(0.0), 1e-3) == "max |difference| ≤ 1e-03"


def test_agree_refuses_to_claim_agreement_it_does_not_have():
    with pytest.raises(AssertionError, match=r"0\.1 exceeds the tolerance 1e-03"):
        course.agree([1.0, 2.0], [1.0, 2.1], 1e-3)
    with pytest.raises(AssertionError):
        course.within(float("nan"), 1.0)
    with pytest.raises(AssertionError):  # NaN on one side only
        course.agree(np.array([np.nan, 1.0]), np.array([0.0, 1.0]), 1.0)
    assert course.agree(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]), 1e-9)  # NaN where both have NaN


def test_agree_and_within_bad_inputs():
    with pytest.raises(ValueError, match="shapes"):
        course.agree(np.zeros(3), np.zeros(4), 1e-6)
    with pytest.raises(ValueError, match="tol must be a positive number"):
        course.within(0.0, 0)
    with pytest.raises(TypeError, match="diff must be a number"):
        course.within("0", 1e-3)
    with pytest.raises(TypeError, match="must be a number, array or tensor"):
        course.agree({"a": 1}, 1.0, 1e-3)


def test_fast_note_prints_only_in_fast_mode(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_FAST", "1")
    course.fast_note("120 steps instead of 1,500")
    assert capsys.readouterr().out == "[fast mode] 120 steps instead of 1,500\n"
    monkeypatch.setenv("COURSE_FAST", "0")
    course.fast_note("120 steps instead of 1,500")
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="non-empty string"):
        course.fast_note("  ")


def test_record_is_silent_unless_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("COURSE_RECORD", raising=False)
    course.record("bits/char", 1.975)
    assert capsys.readouterr().out == ""
    path = tmp_path / "r.jsonl"
    monkeypatch.setenv("COURSE_RECORD", str(path))
    course.record("bits/char", torch.tensor(1.97531), ".3f")
    course.record("verdict", "agrees")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == [{"name": "bits/char", "value": "1.975"}, {"name": "verdict", "value": "agrees"}]
    with pytest.raises(TypeError, match="number or a string"):
        course.record("x", [1, 2])
    with pytest.raises(ValueError, match="name"):
        course.record("", 1)


def test_setup_caps_threads_at_omp_num_threads(monkeypatch, capsys):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        course.setup(seed=0, threads=2)
        assert torch.get_num_threads() == 1 and "| threads 1 |" in capsys.readouterr().out
        monkeypatch.delenv("OMP_NUM_THREADS")
        course.setup(seed=0, threads=2, quiet=True)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def _notebook(path: Path, *sources: str) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_run_course_tabulates_records_and_fails_on_a_broken_notebook(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "01_good.ipynb", "from helpers.course import record, fast_mode",
              "record('answer', 42); record('fast', str(fast_mode())); record('v', 'max |d| ≤ 1e-06')")
    _notebook(nbs / "02_broken.ipynb", "raise ValueError('this lesson is broken')")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_course.py"), "--notebooks", str(nbs),
                        "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    table = (out / "summary.md").read_text()
    assert "| 01_good |" in table and "answer 42; fast True; v max \\|d\\| ≤ 1e-06 |" in table
    assert "| 02_broken |" in table and "FAILED" in table and "this lesson is broken" in table
    assert "1/2 ran clean" in table and "failed: 02_broken" in r.stderr
    assert (out / "01_good.ipynb").exists() and not (nbs / "01_good.record.jsonl").exists()


def test_checkpoint_finds_the_shipped_models_from_anywhere(tmp_path, monkeypatch):
    from pathlib import Path

    from helpers.course import checkpoint

    repo = Path(__file__).resolve().parents[1] / "checkpoints"
    monkeypatch.chdir(repo.parent / "notebooks")  # where the lessons run: the relative path, as printed there
    assert checkpoint("shakespeare-gpt") == Path("../checkpoints/shakespeare-gpt")
    monkeypatch.chdir(tmp_path)  # an nbgrader course folder: the repository's own folder
    assert checkpoint("induction-2l").resolve() == (repo / "induction-2l").resolve()
    (tmp_path / "mine" / "shakespeare-gpt").mkdir(parents=True)
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path / "mine"))
    assert checkpoint("shakespeare-gpt") == tmp_path / "mine" / "shakespeare-gpt"
    with pytest.raises(FileNotFoundError, match="COURSE_CHECKPOINTS"):
        checkpoint("no-such-model")
    for bad in ["", "../etc", ".hidden", 3]:
        with pytest.raises(ValueError, match="checkpoint's folder name"):
            checkpoint(bad)

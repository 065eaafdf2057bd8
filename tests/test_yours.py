"""helpers.yours: a piece that passed its checker is saved with what it needs and comes back in a new kernel;
one that did not pass gives the reference. Run in real Jupyter kernels (nbclient), where notebook code lives."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import yours
from helpers.checks import CheckResult

NOTEBOOK_A = [
    "import math\nimport torch\nfrom torch import nn\nimport torch.nn.functional as F\n"
    "from helpers.attention import causal_mask\nfrom helpers.checks import CheckResult\n"
    "from helpers.yours import adopt, use\nSCALE = 2",
    "def helper_scale(x):\n    return x * SCALE\n\n\n"
    "class Doubler(nn.Module):\n    '''x -> 2x, through a helper function and a module import.'''\n\n"
    "    def __init__(self, n):\n        super().__init__()\n        self.n = n\n\n"
    "    def forward(self, x):\n        ### BEGIN SOLUTION\n        return helper_scale(F.relu(x)) + 0 * causal_mask(2).float().sum()\n        ### END SOLUTION",
    "def ref(x):\n    return None",
    "Piece = adopt('doubler', Doubler, CheckResult('doubler', 3, 3), reference=ref)\n"
    "print(Piece is Doubler)",
    "def bad(x):\n    return x\nB = adopt('bad', bad, CheckResult('bad', 1, 3), reference=ref)\nprint(B is ref)",
]
NOTEBOOK_B = [
    "import torch\nfrom helpers.yours import use\n"
    "D = use('doubler', reference=None)\nprint(D(3)(torch.tensor([-1.0, 2.0])).tolist(), D.__name__)",
    "B = use('bad', reference='REF')\nprint(B)",
]


def _run(cells, workdir):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    old = os.environ.get("COURSE_WORKDIR")
    os.environ["COURSE_WORKDIR"] = str(workdir)
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    finally:
        if old is None:
            del os.environ["COURSE_WORKDIR"]
        else:
            os.environ["COURSE_WORKDIR"] = old
    return ["".join(o.get("text", "") for o in c.outputs) for c in nb.cells]


def test_a_passed_piece_is_used_in_the_next_notebook(tmp_path):
    out_a = _run(NOTEBOOK_A, tmp_path)
    assert "passed its checker" in out_a[3] and out_a[3].strip().endswith("True")
    assert "not there yet (1/3 checks passed)" in out_a[4] and out_a[4].strip().endswith("True")
    saved = (tmp_path / "doubler.py").read_text()
    assert "def helper_scale" in saved and "SCALE = 2" in saved and "import torch.nn.functional as F" in saved
    assert "from helpers.attention import causal_mask" in saved and not (tmp_path / "bad.py").exists()
    assert "SOLUTION" not in saved
    out_b = _run(NOTEBOOK_B, tmp_path)
    assert "yours, from the notebook" in out_b[0] and "[0.0, 4.0] Doubler" in out_b[0]
    assert "the course's version" in out_b[1] and out_b[1].strip().endswith("REF")


def test_a_failing_attempt_forgets_an_earlier_pass(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_WORKDIR", str(tmp_path))
    (tmp_path / "block.py").write_text("__piece__ = 1\n")
    assert yours.adopt("block", lambda x: x, CheckResult("block", 0, 2), reference="REF") == "REF"
    assert yours.saved("block") is None and "not there yet" in capsys.readouterr().out


def test_a_broken_saved_file_falls_back(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_WORKDIR", str(tmp_path))
    (tmp_path / "gpt.py").write_text("this is not python\n")
    assert yours.use("gpt", reference="REF") == "REF"
    assert "does not load" in capsys.readouterr().out


def test_bad_inputs(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_WORKDIR", str(tmp_path))
    with pytest.raises(ValueError, match="lower-case"):
        yours.use("My Block", reference=None)
    with pytest.raises(TypeError, match="CheckResult"):
        yours.adopt("block", lambda x: x, result=True, reference=None)

"""helpers.envcheck: requirement parsing, OK/FAIL lines, the fallback pins, describe_device."""

from importlib import metadata

import pytest

from helpers import envcheck
from helpers.envcheck import (
    BUILTIN_PINS,
    check_environment,
    describe_device,
    find_requirements,
    read_requirements,
)


def write(tmp_path, text):
    p = tmp_path / "requirements.txt"
    p.write_text(text)
    return p


def test_read_requirements_skips_what_is_not_a_pin(tmp_path):
    p = write(
        tmp_path,
        "# a comment\n\ntorch==2.13.0  # trailing comment\nnumpy>=1.0,<3\n-e .\n--index-url https://x.y/z\n"
        "requests[socks] == 2.0 ; python_version < '4'\nplain\n",
    )
    assert read_requirements(p) == {"torch": "==2.13.0", "numpy": ">=1.0,<3", "requests": "==2.0", "plain": ""}


def test_missing_package_prints_fail_and_returns_false(tmp_path, capsys):
    numpy_version = metadata.version("numpy")
    p = write(tmp_path, f"numpy=={numpy_version}\nsurely-not-installed-pkg-xyz==1.0\n")
    assert check_environment(p) is False
    out = capsys.readouterr().out
    assert f"OK   numpy            {numpy_version}" in out
    assert "FAIL surely-not-installed-pkg-xyz not installed" in out
    assert "(need ==1.0)" in out


def test_wrong_version_fails(tmp_path, capsys):
    p = write(tmp_path, "numpy==0.0.1\n")
    assert check_environment(p) is False
    assert "FAIL numpy" in capsys.readouterr().out


def test_all_ok_returns_true(tmp_path, capsys):
    torch_version = metadata.version("torch").split("+")[0]  # a local "+cpu" tag is ignored
    p = write(tmp_path, f"torch=={torch_version}\nnumpy>=1.0\npytest\n")
    assert check_environment(p) is True
    out = capsys.readouterr().out
    assert out.count("OK  ") == 4  # python + three packages
    assert "FAIL" not in out and "all packages match" in out


def test_the_course_requirements_are_found_and_met(capsys):
    path = find_requirements()
    assert path is not None and path.name == "requirements.txt"
    assert "torch" in read_requirements(path)
    assert check_environment() is True, capsys.readouterr().out


def test_builtin_pins_used_when_no_file(monkeypatch, capsys):
    monkeypatch.setattr(envcheck, "find_requirements", lambda start=None: None)
    check_environment()
    out = capsys.readouterr().out
    assert "built-in pins" in out
    for name in BUILTIN_PINS:
        assert f" {name} " in out


def test_builtin_pins_agree_with_requirements_txt():
    path = find_requirements()
    assert path is not None
    pins = read_requirements(path)
    for name, spec in BUILTIN_PINS.items():
        assert pins.get(name) == spec, f"{name}: built-in {spec}, requirements.txt {pins.get(name)}"


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a file"):
        check_environment(tmp_path / "nope.txt")
    with pytest.raises(TypeError, match="requirements_path must be a str, a path or None, got int"):
        check_environment(3)
    with pytest.raises(TypeError, match="verbose must be a bool"):
        check_environment(None, verbose="yes")
    with pytest.raises(FileNotFoundError, match="no requirements file"):
        read_requirements(tmp_path / "nope.txt")
    with pytest.raises(TypeError, match="got list"):
        read_requirements(["torch==1"])


def test_describe_device():
    text = describe_device()
    assert "torch" in text and "torch threads" in text and "CUDA" in text and "MPS" in text

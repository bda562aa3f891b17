"""An installed glasschat — a wheel in a fresh environment, not the source checkout — answers
on its bundled default model."""

import os
import shutil
import site
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _sources() -> list[str]:
    """What the build reads: the project files and the top-level packages pyproject.toml names."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [name.rstrip("*") for name in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    return ["pyproject.toml", "README.md", *packages]


def _run(*command, **options) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, **options)
    assert result.returncode == 0, f"{' '.join(map(str, command))}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow
def test_a_wheel_installed_elsewhere_answers_on_the_bundled_model(tmp_path):
    setuptools = pytest.importorskip("setuptools", reason="building the wheel offline needs setuptools")
    if tuple(int(part) for part in setuptools.__version__.split(".")[:2]) < (74, 1):
        pytest.skip(f"setuptools {setuptools.__version__}: building this wheel (no wheel package, "
                    "ext-modules in pyproject.toml) needs >= 74.1")
    if not (ROOT / "checkpoints" / "default" / "config.json").is_file():
        pytest.skip("no bundled default model in this tree")

    # build from a copy, so the checkout gets no build/ or .egg-info
    source = tmp_path / "source"
    source.mkdir()
    for name in _sources():
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        else:
            shutil.copy2(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(wheels), str(source))
    (wheel,) = wheels.glob("glasschat-*.whl")

    # a fresh environment with the wheel installed, and nothing of this checkout
    env = tmp_path / "env"
    _run(sys.executable, "-m", "venv", "--without-pip", str(env))
    python = env / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel))
    # the dependencies (torch ...) come from this interpreter's site-packages, added after the
    # wheel's, so nothing is downloaded; a path line in a .pth runs none of that directory's own
    # .pth hooks, so an editable install of glasschat there stays invisible
    (env_site,) = env.glob("lib/python3*/site-packages")
    (env_site / "outer_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    where = _run(str(python), "-c", "import glasschat, checkpoints; print(glasschat.__file__)",
                 cwd=tmp_path, env=clean).stdout.strip()
    assert Path(where).is_relative_to(env_site), f"glasschat imported from {where}, not the fresh environment"
    # the wheel carries the trainer's compiled merge loop and split, built from the copy's C source
    for module in ("tokenizer._bpe_merge", "tokenizer._chunk_count"):
        compiled = _run(str(python), "-c", f"import {module} as m; print(m.__file__)",
                        cwd=tmp_path, env=clean).stdout.strip()
        assert Path(compiled).is_relative_to(env_site), compiled

    answer = _run(str(env / "bin" / "glasschat"), "ask", "hi", "--temperature", "0", "--max-tokens", "5",
                  cwd=tmp_path, env=clean)
    assert answer.stdout.strip(), answer.stderr
    assert answer.stderr == "glasschat: reply cut short (max_tokens)\n"

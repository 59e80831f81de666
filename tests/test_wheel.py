"""What users install is the built wheel: it holds every module of the source tree, the
package data, and the ``samic-vos`` command, under the names the tree installs as."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from source_tree import FOLDERS, REPO, source_modules

# Files read at run time that are not Python modules: (folder of the tree, glob).
# py.typed: the PEP 561 marker without which type checkers ignore the installed annotations.
PACKAGE_DATA = (
    ("samic_vos/annotate/static", "*"),
    ("samic_vos/data/splits", "*/*"),
    ("samic_vos", "py.typed"),
)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """The sdist and the wheel built from it, as CI builds them (without network here), from a
    copy of the tree's files (an editable install leaves build files that a build would reuse)."""
    tree, out = tmp_path_factory.mktemp("tree"), tmp_path_factory.mktemp("dist")
    listed = [
        "git",
        "-C",
        str(REPO),
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ]
    for name in subprocess.run(listed, capture_output=True, check=True).stdout.decode().split("\0"):
        if name and (REPO / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, tree / name)
    command = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(tree)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (sdist,), (wheel,) = out.glob("*.tar.gz"), out.glob("*.whl")
    return sdist, wheel


def _installed_path(module: str, path: Path) -> str:
    """Where ``module`` (from file ``path``) lies inside the wheel."""
    name = module.replace(".", "/")
    return f"{name}/__init__.py" if path.name == "__init__.py" else f"{name}.py"


def test_the_wheel_holds_every_module_and_the_package_data(built):
    names = set(zipfile.ZipFile(built[1]).namelist())
    missing = [
        _installed_path(module, path)
        for module, path in source_modules().items()
        if _installed_path(module, path) not in names
    ]
    for folder, pattern in PACKAGE_DATA:
        files = [p for p in (REPO / folder).glob(pattern) if p.is_file()]
        assert files, f"{folder}/{pattern} matches nothing in the tree"
        missing += [
            str(p.relative_to(REPO)) for p in files if str(p.relative_to(REPO)) not in names
        ]
    assert missing == []
    # The top-level folders install under samic_vos, never as global packages.
    assert not {n.split("/")[0] for n in names} & {"pipelines", "eval", "tests", "benchmarks"}


def test_the_wheel_declares_the_command(built):
    wheel = zipfile.ZipFile(built[1])
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(entry_points).decode()
    assert "samic-vos = samic_vos.commands.cli:main" in text


def test_the_sdist_holds_every_source_file(built):
    with tarfile.open(built[0]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    sources = [
        str(p.relative_to(REPO)) for folder in FOLDERS for p in (REPO / folder).rglob("*.py")
    ]
    assert [s for s in sources if s not in names] == []
    assert {"pyproject.toml", "setup.py", "README.md"} <= names

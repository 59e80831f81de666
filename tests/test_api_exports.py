"""`import samic_vos` is light (no torch) and every public name resolves, lazily, to the object
its module defines; type checkers see the same names."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import samic_vos

INIT = Path(samic_vos.__file__)


def test_import_samic_vos_loads_no_torch():
    code = (
        "import sys, samic_vos; "
        "print(samic_vos.__version__, samic_vos.read_mask.__name__, "
        "sorted(m for m in ('torch', 'cv2', 'segment_anything') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == [samic_vos.__version__, "read_mask", "[]"]


def test_every_public_name_resolves_to_its_module_object():
    table = samic_vos._EXPORTS
    assert samic_vos.__all__ == ["__version__", *table]
    assert set(samic_vos.__all__) <= set(dir(samic_vos))
    for name, (module, attribute) in table.items():
        assert getattr(samic_vos, name) is getattr(importlib.import_module(module), attribute)
    with pytest.raises(AttributeError, match="no attribute 'VideoTracer'"):
        samic_vos.VideoTracer  # noqa: B018


def test_type_checkers_see_the_lazy_names():
    """The ``if TYPE_CHECKING:`` imports of samic_vos/__init__.py are the lazy table."""
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    block = next(node for node in tree.body if isinstance(node, ast.If))
    assert ast.unparse(block.test) == "TYPE_CHECKING"
    seen = {
        alias.asname or alias.name: (node.module, alias.name)
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert seen == samic_vos._EXPORTS

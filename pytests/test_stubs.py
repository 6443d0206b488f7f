"""The type stubs shipped for the C++ module (_core.pyi) name exactly what the module exports, so type
checkers and editors see the real API (regenerate with `pybind11-stubgen locateanything_native._core`)."""
import ast
import pathlib

import locateanything_native as la
from locateanything_native import _core

STUB = pathlib.Path(la.__file__).parent / "_core.pyi"


def _stub_names():
    tree = ast.parse(STUB.read_text())
    names, members = set(), {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
            members[node.name] = {n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AnnAssign))
                                  and not isinstance(n, ast.AnnAssign)} | {
                n.target.id for n in node.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
        elif isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id != "__all__":
            names.add(node.target.id)
    return names, members


def test_stub_lists_every_export_and_nothing_else():
    names, members = _stub_names()
    exported = {n for n in dir(_core) if not n.startswith("_")}
    assert names == exported
    for cls in ("Engine", "Result", "Tokenizer"):
        real = {n for n in vars(getattr(_core, cls)) if not n.startswith("_")}
        assert {m for m in members[cls] if not m.startswith("_")} == real, cls


def test_package_is_marked_typed():
    assert (STUB.parent / "py.typed").is_file()

"""The shape of the code base: the libraries stand alone, the CLI only parses, calls and prints."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("hunyuan_cli", "render", "rewrite", "serve")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_render_and_rewrite_import_neither_the_cli_nor_each_other() -> None:
    """The server composes the libraries (render, and rewrite for rewrite jobs); none of them imports it."""
    for pkg, banned in (
        ("render", {"hunyuan_cli", "rewrite", "serve"}),
        ("rewrite", {"hunyuan_cli", "render", "serve"}),
        ("serve", {"hunyuan_cli"}),
    ):
        for path in (REPO / pkg).rglob("*.py"):
            assert not (_imports(path) & banned), (
                f"{path.relative_to(REPO)} imports {_imports(path) & banned}"
            )


def test_the_cli_holds_no_orchestration() -> None:
    """No settings objects built, no model defaults looked up, no stage functions called from the CLI: it passes
    the user's flags to the engine."""
    banned_calls = {
        "EncodeSettings",
        "RenderSettings",
        "DecodeSettings",
        "defaults",
        "encode_jobs",
        "render_jobs",
    }
    for path in (REPO / "hunyuan_cli").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
                assert name not in banned_calls, f"{path.name}:{node.lineno} calls {name}()"


def test_no_private_imports_across_modules_and_no_huge_modules() -> None:
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            lines = path.read_text().count("\n")
            assert lines <= 400, f"{path.relative_to(REPO)} has {lines} lines"
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                    private = [a.name for a in node.names if a.name.startswith("_")]
                    assert not private, (
                        f"{path.relative_to(REPO)} imports private {private} from {node.module}"
                    )

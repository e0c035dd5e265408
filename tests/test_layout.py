"""The shape of the code base: the libraries stand alone, the CLI only parses, calls and prints, `render` is built in
layers that import only downward (every import counted: at the top, inside functions, under TYPE_CHECKING), and
model families are plug-ins that the generic code never names."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("hunyuan_cli", "render", "rewrite", "serve")

# render's layers, bottom first: a module may import its own layer and the ones below (docs/architecture.md).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("render.core",)),
    ("files", ("render.files",)),
    ("demo", ("render.demo",)),
    ("model", ("render.model",)),
    ("sampling", ("render.sampling",)),
    ("families", ("render.families",)),
    ("stages", ("render.stages",)),
    ("plan", ("render.plan",)),
    ("run", ("render.run",)),
    ("scale", ("render.scale",)),
    ("api", ("render.engine", "render")),
)
# Model classes of the families' libraries: generic modules never name one (their families do).
MODEL_CLASS_WORDS = (
    "HunyuanVideoTransformer", "HunyuanVideo15Transformer", "HunyuanVideoPipeline", "HunyuanVideo15Pipeline",
    "HunyuanVideoImageToVideo", "HunyuanVideo15ImageToVideo", "AttnProcessor", "AutoencoderKL", "LlamaModel",
    "LlavaForConditionalGeneration", "CLIPTextModel", "CLIPVisionModel", "Qwen2", "T5EncoderModel", "ByT5", "Siglip",
)  # fmt: skip


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(pkg: str) -> dict[str, Path]:
    return {_module_name(p): p for p in (REPO / pkg).rglob("*.py")}


def _import_edges(path: Path, known: set[str]) -> Iterator[str]:
    """Every hyv module `path` imports, wherever the import stands (`from a.b import c` names a.b.c when c is a
    module, else a.b)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in known:
                    yield a.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                if sub in known:
                    yield sub
                elif node.module in known:
                    yield node.module


def _layer(module: str) -> int:
    best, found = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, found = len(p), i
    assert found >= 0, f"{module} is in no layer: add it to LAYERS (and docs/architecture.md)"
    return found


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_render_layers_import_only_downward() -> None:
    modules = _modules("render")
    known = set(modules)
    crossing = []
    for name, path in modules.items():
        for target in _import_edges(path, known):
            if _layer(target) > _layer(name):
                crossing.append(f"{name} ({LAYERS[_layer(name)][0]}) imports {target} ({LAYERS[_layer(target)][0]})")
    assert not crossing, "imports that run up the layers:\n" + "\n".join(sorted(crossing))


def test_no_import_cycle_among_hyvs_modules() -> None:
    """No cycle, counting imports inside functions and under TYPE_CHECKING (a package's __init__ importing its own
    modules is the package's face, not a cycle: the modules never import the package name back)."""
    modules = {name: path for pkg in PACKAGES for name, path in _modules(pkg).items()}
    known = set(modules)
    graph = {name: sorted(set(_import_edges(path, known)) - {name}) for name, path in modules.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_render_top_is_a_handful_of_modules() -> None:
    top = sorted(p.name for p in (REPO / "render").glob("*.py"))
    assert len(top) <= 8, top


def test_generic_modules_name_no_model_class() -> None:
    """Outside render/families/, no code names a model class (docstrings and comments may mention them)."""
    offenders = []
    for path in (REPO / "render").rglob("*.py"):
        if "families" in path.relative_to(REPO).parts:
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(n.body[0].value)
            for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and n.body
            and isinstance(n.body[0], ast.Expr)
            and isinstance(n.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            words: list[str] = []
            if isinstance(node, ast.Name):
                words = [node.id]
            elif isinstance(node, ast.Attribute):
                words = [node.attr]
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                words = [a.name for a in node.names]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                words = [node.value]
            for w in words:
                if any(c in w for c in MODEL_CLASS_WORDS):
                    offenders.append(f"{path.relative_to(REPO)}:{getattr(node, 'lineno', '?')} names {w[:60]!r}")
    assert not offenders, "\n".join(offenders)


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

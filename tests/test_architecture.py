"""The package's shape, asserted: imports flow one way (docs/ARCHITECTURE.md), no circles, models
import only torch and the DSP helpers, no source file grows past ~550 lines without a reason."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "denoisezoo"

# Layer of every top-level module / subpackage: an import may only go to a lower layer (or stay
# inside its own subpackage). The same table is drawn in docs/ARCHITECTURE.md.
LAYERS = {
    "dsp": 0, "audio": 0, "family": 0,
    "nn": 1,
    "gtcrn": 2, "rnnoise_port": 2, "ulunas": 2, "datasets": 2,
    "hub": 3,
    "streaming": 4, "profile": 4,
    "evaluation": 5, "export": 5,
    "training": 6, "compress": 6,
    "api": 7, "live": 7,
    "cli": 8,
    "__main__": 9, "": 9,  # "": the package facade (denoisezoo/__init__.py, lazy)
}
MODEL_PACKAGES = ("gtcrn", "rnnoise_port", "ulunas")
MODEL_MAY_IMPORT = {"torch", "numpy", "denoisezoo.dsp", "denoisezoo.nn", "denoisezoo.family"}
MAX_LINES = 550


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every ``denoisezoo`` module imported anywhere in ``path`` (top level or inside functions),
    as ``(module, line)``; ``from pkg import sub`` counts ``pkg.sub`` when ``sub`` is a module."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((mod, node.lineno))
            for a in node.names:
                sub = f"{mod}.{a.name}"
                rel = Path(*sub.split("."))
                if (SRC / rel).with_suffix(".py").is_file() or (SRC / rel / "__init__.py").is_file():
                    out.append((sub, node.lineno))
    return out


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(PKG.rglob("*.py")):
        graph[_module_name(path)] = {m for m, _ in _imports(path) if m.split(".")[0] == "denoisezoo"}
    return graph


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_top_level_module_has_a_layer():
    tops = {_top(m) for m in _graph()}
    missing = tops - LAYERS.keys()
    assert not missing, f"give these a layer here and in docs/ARCHITECTURE.md: {missing}"


def test_imports_flow_one_way():
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        src = _top(_module_name(path))
        for mod, line in _imports(path):
            if mod.split(".")[0] != "denoisezoo":
                continue
            dst = _top(mod)
            if dst == src or (mod == "denoisezoo" and src == "cli"):  # cli reads __version__
                continue
            if not LAYERS[dst] < LAYERS[src]:
                bad.append(f"{path.relative_to(SRC)}:{line} imports {mod} "
                           f"(layer {LAYERS[src]} -> {LAYERS[dst]})")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_no_import_cycle_between_modules():
    graph = _graph()
    color: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        color[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            # a package's __init__ re-exporting its own submodules is not a circle
            if n == m or n not in graph or (m.startswith(n + ".") and n != "denoisezoo"):
                continue
            if color.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in color and (cyc := visit(n)):
                return cyc
        stack.pop()
        color[m] = 2
        return None

    for m in sorted(graph):
        if m not in color and (cyc := visit(m)):
            pytest.fail("import circle: " + " -> ".join(cyc))


@pytest.mark.parametrize("family", MODEL_PACKAGES)
def test_models_import_only_torch_and_dsp(family):
    bad = []
    for path in sorted((PKG / family).rglob("*.py")):
        if path.name == "family.py":  # the family's declaration may name its own loss etc.
            allowed = MODEL_MAY_IMPORT | {"denoisezoo.nn.losses"}
        else:
            allowed = MODEL_MAY_IMPORT
        for mod, line in _imports(path):
            root = mod.split(".")[0]
            if mod.startswith(f"denoisezoo.{family}") or root in ("__future__",):
                continue
            if root == "denoisezoo" and not any(mod == a or mod.startswith(a + ".") for a in allowed):
                bad.append(f"{path.relative_to(SRC)}:{line} imports {mod}")
            if root in ("lightning", "pytorch_lightning", "soundfile", "onnxruntime", "jsonargparse"):
                bad.append(f"{path.relative_to(SRC)}:{line} imports {mod}")
    assert not bad, "\n".join(bad)


def test_no_source_file_too_long_without_a_reason():
    long = []
    for path in sorted(PKG.rglob("*.py")):
        lines = path.read_text().splitlines()
        if len(lines) > MAX_LINES and not any("Why this file is long" in ln for ln in lines[:60]):
            long.append(f"{path.relative_to(SRC)}: {len(lines)} lines")
    assert not long, ("split these or say at the top why not ('Why this file is long: ...'):\n"
                      + "\n".join(long))


def test_a_family_is_declared_once_and_registered():
    from denoisezoo import hub
    from denoisezoo.family import Family

    for name, fam in hub.FAMILIES.items():
        assert isinstance(fam, Family) and fam.name == name
        assert set(fam.presets) <= set(hub.PRESETS)
        for preset, factory in fam.presets.items():
            model = factory()
            assert hub.family_of(model) is fam, preset
            assert type(fam.loss(model)).__name__.endswith("Loss")
    # no tool tests a family by class name any more
    offenders = []
    for path in sorted(PKG.rglob("*.py")):
        text = path.read_text()
        for needle in ('== "GTCRN"', "== 'GTCRN'", '== "RNNoise"', "_is_rnnoise", "type(model).__name__ =="):
            if needle in text:
                offenders.append(f"{path.relative_to(SRC)}: {needle}")
    assert not offenders, offenders

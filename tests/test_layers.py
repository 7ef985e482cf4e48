"""The house's rule (issue 15): imports only run downhill. Each module's imports are parsed with ``ast`` and
checked against the layer order declared here (and in resolver/__init__.py); a package may import its own
layer and those below, never one above, and there is no import cycle between modules."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("resolver", "blocklists", "webui", "provider")

# lowest first; a module belongs to the longest prefix listed
LAYERS: list[tuple[str, ...]] = [
    ("resolver", "resolver.base"),
    ("blocklists",),
    ("resolver.policy",),
    ("resolver.store",),
    ("resolver.engine",),
    ("resolver.service",),
    ("resolver.ops",),
    ("webui", "provider"),
    ("resolver.cli", "resolver.__main__"),
]


def layer_of(module: str) -> int:
    best, level = -1, None
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best:
                best, level = len(name), i
    assert level is not None, f"{module} is in no layer: add it to LAYERS"
    return level


def modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            if "data" in path.relative_to(REPO).parts:
                continue
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Hearth modules imported by one module (relative imports resolved, ``from pkg import mod`` seen)."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        for t in targets:
            if t.split(".")[0] in PACKAGES:
                while t not in known and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in known and t != name:
                    out.add(t)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def test_every_module_has_a_layer():
    for name in modules():
        layer_of(name)


def test_imports_only_run_downhill():
    upward = [f"{m} (layer {layer_of(m)}) imports {d} (layer {layer_of(d)})"
              for m, deps in graph().items() for d in sorted(deps)
              if layer_of(d) > layer_of(m) and not (d == "resolver" or m.startswith(d + "."))]
    assert not upward, "imports running uphill:\n" + "\n".join(upward)


def test_no_import_cycles():
    g = graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(g.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_checker_catches_an_upward_import(tmp_path):
    """The rule bites: a policy module that imported the engine would be reported."""
    fake = tmp_path / "resolver" / "policy" / "leak.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from resolver.engine import cache\nfrom ..service import config\n")
    known = {**modules(), "resolver.policy.leak": fake}
    deps = imports_of("resolver.policy.leak", fake, known)
    assert deps == {"resolver.engine.cache", "resolver.service.config"}
    assert all(layer_of(d) > layer_of("resolver.policy.leak") for d in deps)

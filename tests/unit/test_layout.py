"""The tree is the map: each subpackage imports only from the layers below it, and no
module imports itself back through others (function-level imports count too)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "agent_sandbox"
# Higher layers import lower ones only; one rank may import itself (another module of the
# same package), never upwards.
RANKS = {"_cli": 5, "_run": 4, "_plan": 3, "_policy": 2, "_net": 1, "_seccomp": 1,
         "_errors": 0, "_say": 0, "_files": 0}
TOP = ("__init__", "__main__")
MAX_LINES = 400
# Longer modules, each with why it stays one module.
LONG = {
    "_cli/explain.py": "one question (what a launch makes of a path or host) over the real "
    "plan and network decision; its halves share the origins and printing",
    "_net/proxy.py": "the proxy's connection handlers: CONNECT, absolute-URI, transparent and "
    "published paths share one decide-dial-relay sequence",
    "_plan/build.py": "one pure function from policy and host view to the bwrap plan; its "
    "sections are small functions in the order bwrap applies them",
    "_run/launch.py": "the runner owns every side effect on one ExitStack, in launch order",
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        found[".".join(rel.parts).removesuffix(".__init__")] = path
    return found


def _imports(path: Path, name: str) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            elif node.module and node.module.startswith("agent_sandbox."):
                module = node.module.removeprefix("agent_sandbox.")
            elif node.module == "agent_sandbox":
                out.update(a.name for a in node.names if a.name.startswith("_")
                           and not a.name.startswith("__"))
                continue
            else:
                continue
            out.add(module)
        elif isinstance(node, ast.Import):
            out.update(a.name.removeprefix("agent_sandbox.") for a in node.names
                       if a.name.startswith("agent_sandbox."))
    return out


def _rank(module: str) -> int:
    return RANKS[module.split(".")[0]]


def test_every_module_belongs_to_a_layer() -> None:
    assert [m for m in _modules() if m not in TOP and m.split(".")[0] not in RANKS] == []


def test_imports_go_down_only() -> None:
    upward = []
    for name, path in _modules().items():
        if name in TOP:
            continue
        for target in _imports(path, name):
            if _rank(target) > _rank(name):
                upward.append(f"{name} -> {target}")
    assert upward == []


def test_no_import_circles() -> None:
    modules = _modules()
    graph = {name: {t for t in _imports(path, name) if t in modules}
             for name, path in modules.items()}
    circles = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(" -> ".join([*trail[trail.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert circles == []


def test_every_package_says_what_it_owns() -> None:
    for name in RANKS:
        init = PACKAGE / name / "__init__.py"
        if init.exists():
            assert ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))), name


def test_modules_stay_small_or_say_why() -> None:
    long = {str(p.relative_to(PACKAGE)): len(p.read_text(encoding="utf-8").splitlines())
            for p in PACKAGE.rglob("*.py")}
    assert {p: n for p, n in long.items() if n > MAX_LINES and p not in LONG} == {}


def test_the_threat_models_table_of_host_executed_paths_is_the_code_s() -> None:
    from agent_sandbox._policy.protected import COVERED

    doc = (PACKAGE.parent / "docs" / "threat-model.md").read_text(encoding="utf-8")
    rows = [line for line in doc.splitlines() if line.startswith("| `")
            and ("| each work tree |" in line or "| each git directory |" in line)]
    assert [line.split("`")[1] for line in rows] == [c.path for c in COVERED]
    for line, covered in zip(rows, COVERED, strict=True):
        assert f"| {covered.tool} | {covered.when} |" in line, line
        assert ("cannot be created" in line) is covered.placeholder, line


def test_the_architectures_module_table_names_every_module() -> None:
    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = {name for line in doc.splitlines() if line.startswith("| `_")
             for name in line.split("|")[1].replace("`", "").replace(" ", "").split(",")}
    # Every module but the packages themselves (their __init__ docstrings say what they own).
    modules = {name for name, path in _modules().items()
               if path.name != "__init__.py" and name not in TOP}
    assert len(modules) > 50
    assert sorted(modules - named) == []

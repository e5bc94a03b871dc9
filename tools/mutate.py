"""Mutation testing of the security core: plant one bug at a time, run the suite, count the survivors.

A scripted equivalent of mutmut/cosmic-ray, kept small because the gateway is
installed in editable mode (those tools' import tricks lose to the editable
finder, and every mutant would silently "survive"). Each mutant is one AST
change written into a scratch copy of the repository, whose ``gateway`` then
comes first on ``sys.path``; the chosen tests run there with ``-x`` and a
timeout. Killed = the tests failed (or timed out); survived = they passed.

Operators: comparison flips (== !=, < <=, > >=, in / not in, is / is not),
and <-> or, dropping a ``not``, True <-> False, integer n -> n + 1 and 0 <-> 1,
``return X`` -> ``return None``, ``raise`` -> ``pass``, an ``if`` test forced
True and forced False, and removing a bare call statement.

Run: .venv/bin/python -m tools.mutate gateway/signing/verification.py [more modules]
       [--tests tests/] [--jobs 2] [--timeout 120] [--json report.json] [--only LINE]
Survivors are printed with their line and the change; judge each one: a test
is missing, or the mutant is equivalent (say why in docs/mutation-testing.md).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_FLIPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}  # fmt: skip


@dataclass(frozen=True)
class Mutant:
    module: str
    index: int
    line: int
    description: str


@dataclass
class Outcome:
    mutant: Mutant
    killed: bool
    seconds: float
    detail: str = ""


class _Mutator(ast.NodeTransformer):
    """Applies mutation number ``target`` (counting every candidate in source order), or just counts."""

    def __init__(self, target: int | None) -> None:
        self.target = target
        self.count = 0
        self.found: list[tuple[int, str]] = []

    def _candidate(self, node: ast.AST, description: str) -> bool:
        index = self.count
        self.count += 1
        self.found.append((getattr(node, "lineno", 0), description))
        return index == self.target

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        # Decorators (cache sizes), annotations and defaults' spelling are not the behaviour under test:
        # mutate only the body's statements.
        node.body = [self.visit(stmt) for stmt in node.body]
        return node

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]  # noqa: N815 (ast's visitor name)

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        for i, op in enumerate(node.ops):
            flipped = _FLIPS.get(type(op))
            if flipped and self._candidate(node, f"{type(op).__name__} -> {flipped.__name__}"):
                node.ops[i] = flipped()
        return node

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        self.generic_visit(node)
        other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        if self._candidate(node, f"{type(node.op).__name__} -> {type(other).__name__}"):
            node.op = other
        return node

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Not) and self._candidate(node, "drop 'not'"):
            return node.operand
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        value = node.value
        if isinstance(value, bool):
            if self._candidate(node, f"{value} -> {not value}"):
                return ast.copy_location(ast.Constant(not value), node)
        elif isinstance(value, int) and self._candidate(node, f"{value} -> {1 if value == 0 else value + 1}"):
            return ast.copy_location(ast.Constant(1 if value == 0 else value + 1), node)
        return node

    def visit_Return(self, node: ast.Return) -> ast.AST:
        self.generic_visit(node)
        if node.value is not None and not _is_none(node.value) and self._candidate(node, "return None"):
            return ast.copy_location(ast.Return(ast.Constant(None)), node)
        return node

    def visit_Raise(self, node: ast.Raise) -> ast.AST:
        self.generic_visit(node)
        if self._candidate(node, "raise -> pass"):
            return ast.copy_location(ast.Pass(), node)
        return node

    def visit_If(self, node: ast.If) -> ast.AST:
        self.generic_visit(node)
        for forced in (True, False):
            if self._candidate(node, f"if condition -> {forced}"):
                node.test = ast.copy_location(ast.Constant(forced), node.test)
        return node

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        self.generic_visit(node)
        call = node.value.value if isinstance(node.value, ast.Await) else node.value
        if isinstance(call, ast.Call) and self._candidate(node, "remove call statement"):
            return ast.copy_location(ast.Pass(), node)
        return node


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _module_tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text())


def mutants_of(path: Path) -> list[Mutant]:
    counter = _Mutator(None)
    counter.visit(_module_tree(path))
    rel = str(path.relative_to(ROOT))
    return [Mutant(rel, i, line, text) for i, (line, text) in enumerate(counter.found)]


def mutated_source(path: Path, index: int) -> str:
    tree = _Mutator(index).visit(_module_tree(path))
    return ast.unparse(ast.fix_missing_locations(tree))


def _scratch(root: Path) -> Path:
    scratch = Path(tempfile.mkdtemp(prefix="gw-mutant-"))
    for name in ("gateway", "tests", "pyproject.toml"):
        source = root / name
        if source.is_dir():
            shutil.copytree(source, scratch / name, ignore=shutil.ignore_patterns("__pycache__", ".hypothesis"))
        else:
            shutil.copy2(source, scratch / name)
    return scratch


def run_one(mutant: Mutant, tests: list[str], timeout: float) -> Outcome:
    scratch = _scratch(ROOT)
    start = time.monotonic()
    try:
        target = scratch / mutant.module
        target.write_text(mutated_source(ROOT / mutant.module, mutant.index))
        env = {**os.environ, "PYTHONPATH": str(scratch), "PYTHONDONTWRITEBYTECODE": "1",
               "HYPOTHESIS_PROFILE": "mutation"}  # fmt: skip
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", *tests]
        try:
            done = subprocess.run(command, cwd=scratch, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return Outcome(mutant, True, time.monotonic() - start, "timeout")
        tail = (done.stdout.strip().splitlines() or [""])[-1]
        return Outcome(mutant, done.returncode != 0, time.monotonic() - start, tail)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _selected(mutants: list[Mutant], only: set[int] | None) -> Iterator[Mutant]:
    return (m for m in mutants if only is None or m.line in only)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="+", help="source files to mutate, e.g. gateway/keys/keyring.py")
    parser.add_argument("--tests", nargs="*", default=["tests/"], help="pytest arguments (default tests/)")
    parser.add_argument("--jobs", type=int, default=2, help="mutants run in parallel (default 2)")
    parser.add_argument("--timeout", type=float, default=180, help="seconds per mutant; a timeout counts as killed")
    parser.add_argument("--only", type=int, action="append", help="only mutants on this line (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--json", metavar="FILE", help="write every outcome here")
    args = parser.parse_args()
    mutants = [m for module in args.modules for m in mutants_of(ROOT / module)]
    chosen = list(_selected(mutants, set(args.only) if args.only else None))
    if args.list:
        for m in chosen:
            print(f"{m.module}:{m.line} #{m.index} {m.description}")
        return 0
    print(f"{len(chosen)} mutants in {len(args.modules)} module(s); tests: {' '.join(args.tests)}", flush=True)
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(args.jobs) as pool:
        for outcome in pool.map(lambda m: run_one(m, args.tests, args.timeout), chosen):
            outcomes.append(outcome)
            mark = "killed  " if outcome.killed else "SURVIVED"
            m = outcome.mutant
            print(f"{mark} {m.module}:{m.line} #{m.index} {m.description} ({outcome.seconds:.0f}s)", flush=True)
    killed = sum(o.killed for o in outcomes)
    print(f"\n{killed}/{len(outcomes)} killed ({100 * killed / max(1, len(outcomes)):.1f}%)")
    for o in outcomes:
        if not o.killed:
            print(f"  survived: {o.mutant.module}:{o.mutant.line} #{o.mutant.index} {o.mutant.description}")
    if args.json:
        Path(args.json).write_text(json.dumps([{**asdict(o.mutant), "killed": o.killed, "detail": o.detail}
                                               for o in outcomes], indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Mutation testing of the security core: plant one bug at a time, run the tests that reach it, count survivors.

A scripted equivalent of mutmut/cosmic-ray, kept small because the gateway is
installed in editable mode (those tools' import tricks lose to the editable
finder, and every mutant would silently "survive"). Each mutant is one AST
change written into a scratch copy of the repository, whose ``gateway`` then
comes first on ``sys.path`` (and on ``PYTHONPATH``, so tests that start
``gatewayctl`` in a subprocess run the mutant too).

How a run goes (docs/mutation-testing.md):

1. **Snapshot.** The repository's files (``git ls-files``, untracked included)
   are copied once, so edits made during the run change nothing.
2. **Map.** The chosen tests run once, unmutated, under coverage with one
   context per test (subprocesses included, via ``COVERAGE_PROCESS_START``).
   Any failure here stops the run: a test failing without a mutant would
   "kill" every mutant. ``--skip-failing`` drops such tests instead.
3. **Mutants.** For each mutant only the tests that executed the statement
   it changes are run (for a private module constant, the statements that
   read it; for anything else at module level, every test reaching the
   module), quickest test files first, with ``-x`` and a timeout of five
   times their unmutated duration plus a minute. Killed = a test failed,
   collection failed, pytest crashed or the timeout struck; survived = they
   passed; uncovered = no test runs that statement at all. Mutant processes are forked from a parent that
   has already imported pytest, hypothesis, aiohttp and friends, which saves
   seconds per mutant; the gateway is never imported in the parent.
4. **Report.** Counts per module, the score excluding equivalent mutants, and
   the survivors. A mutant is *equivalent* when it is listed in
   docs/mutation-testing.md as a table row whose first cell is its key in
   backquotes: ``module::function::change`` (with ``#n`` for the n-th same
   change in that function), which survives line shifts.

Operators: comparison flips (== !=, < <=, > >=, in / not in, is / is not),
and <-> or, dropping a ``not``, True <-> False, integer n -> n + 1 and 0 <-> 1,
``return X`` -> ``return None``, ``raise`` -> ``pass``, an ``if`` test forced
True and forced False, and removing a bare call statement.

Hypothesis runs under the ``mutation`` profile (tests/conftest.py, chosen by
``HYPOTHESIS_PROFILE``): derandomized and without the example database, so a
run is reproducible and a mutant is not "killed" by a replayed old failure.

Run: .venv/bin/python -m tools.mutate gateway/keys/keyring.py [more modules]
       [--tests tests/test_x.py ...] [--jobs 2] [--json report.json] [--only LINE] [--fail-under 90]
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import inspect
import json
import os
import pkgutil
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import types
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS_DOC = ROOT / "docs" / "mutation-testing.md"
DEFAULT_TESTS = ["tests/"]
_DIALECT_TESTS = [
    "tests/test_dialect_common.py",
    "tests/test_dialect_vectors.py",
    "tests/test_dialect_properties.py",
    "tests/test_dialect_interop.py",
    "tests/test_dialect_registry.py",
    "tests/test_dialect_google_cdn.py",
    "tests/test_dialect_s3.py",
    "tests/test_cloudfront_keygroups.py",
    "tests/test_native.py",
    "tests/security/test_dialect_malleability.py",
    "tests/security/test_repeated_parameters.py",
    "tests/security/test_akamai_url_token_as_acl.py",
    "tests/security/test_media_cdn_full_path.py",
    "tests/security/test_mac_settings.py",
    "tests/security/test_cookie_bytes.py",
    "tests/security/test_number_spelling.py",
    "tests/security/test_field_boundaries.py",
    "tests/security/test_attribution.py",
    "tests/security/test_path_token_spellings.py",
]
# Each module's own tests (the longest matching prefix wins): the map run reads only these, so one mutant costs
# seconds, not a suite. ``--tests`` overrides; a module not listed falls back to DEFAULT_TESTS.
MODULE_TESTS: dict[str, list[str]] = {
    "gateway/signing/dialects/": _DIALECT_TESTS,
    "gateway/access/authz.py": ["tests/test_authz.py", "tests/security/test_owner_identity.py"],
    "gateway/access/identity.py": ["tests/test_identity.py", "tests/security/test_jwt.py"],
    "gateway/access/tokens.py": ["tests/test_tokens.py", "tests/security/test_jwt.py", "tests/test_identity.py"],
    "gateway/access/verified_tokens.py": ["tests/test_verified_tokens.py", "tests/test_identity.py"],
    "gateway/access/credential_file.py": ["tests/security/test_credentials.py", "tests/test_client.py"],
    "gateway/admin/grants.py": ["tests/security/test_grant_end.py", "tests/test_grants.py"],
    "gateway/limits/": ["tests/test_limiter.py", "tests/test_limits.py", "tests/security/test_batch_limits.py"],
    "gateway/signing/paths.py": ["tests/test_paths.py", "tests/security/test_one_file_one_spelling.py"],
    "gateway/signing/path_tokens.py": ["tests/test_path_tokens.py", "tests/test_native.py"],
    "gateway/audit/verify.py": [
        "tests/test_logverify.py", "tests/test_audit_tamper.py", "tests/security/test_audit_prune_evasion.py",
        "tests/test_audit_retention.py",
    ],
}  # fmt: skip
# Third-party imports worth paying once in the parent instead of once per mutant (never the gateway itself).
_PRELOAD = (
    "pytest", "coverage", "hypothesis", "_hypothesis_pytestplugin", "pytest_asyncio.plugin", "pytest_aiohttp.plugin",
    "anyio.pytest_plugin", "platformdirs.pytest_plugin", "schemathesis.pytest.plugin", "aiohttp", "aiohttp.web",
    "aiohttp.test_utils", "cryptography.hazmat.primitives.asymmetric.ed25519", "jwt", "boto3", "msgspec",
    "aiosqlite", "asyncpg", "yaml",
)  # fmt: skip
_FLIPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}  # fmt: skip
_EQUIVALENT_ROW = re.compile(r"^\|\s*`([^`]+::[^`]+)`\s*\|", re.MULTILINE)
_MODULE_LEVEL = "<module>"


@dataclass(frozen=True)
class Mutant:
    module: str
    index: int
    line: int
    description: str
    function: str
    key: str  # module::function::description[#n]: names the mutant across edits elsewhere in the file
    source: str  # the original source line, for the reader
    # The lines whose execution can show the change: the statement it changes (a compound statement's
    # header only), or for a private module constant every statement reading it. A test that runs none of
    # them runs the mutant exactly as the original. Empty: anything importing the module may see it.
    reach: tuple[int, ...]


@dataclass
class Outcome:
    mutant: Mutant
    status: str  # killed | timeout | survived | uncovered | error
    seconds: float
    tests: int
    detail: str = ""

    @property
    def killed(self) -> bool:
        return self.status in ("killed", "timeout")


# -- mutants -----------------------------------------------------------------------------------------------


class _Mutator(ast.NodeTransformer):
    """Applies mutation number ``target`` (counting every candidate in source order), or just counts."""

    def __init__(self, target: int | None) -> None:
        self.target = target
        self.count = 0
        self.found: list[tuple[int, int, str]] = []  # first line, last line, change

    def _candidate(self, node: ast.AST, description: str) -> bool:
        index = self.count
        self.count += 1
        first = getattr(node, "lineno", 0)
        self.found.append((first, getattr(node, "end_lineno", None) or first, description))
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
        return self._loosened(node)

    def _loosened(self, node: ast.Compare) -> ast.AST:
        """``a == b`` loosened to a part of a name matching (``a in b``, ``b.startswith(a)``, both ways round);
        ``a != b`` to the negations. The bug class of an owner ``ali`` taken for ``alice``."""
        if len(node.ops) != 1 or not isinstance(node.ops[0], ast.Eq | ast.NotEq):
            return node
        left, right, negated = node.left, node.comparators[0], isinstance(node.ops[0], ast.NotEq)
        if not (_maybe_text(left) and _maybe_text(right)):
            return node
        name, sign = ("NotEq", "not ") if negated else ("Eq", "")
        for a, b, a_name, b_name in ((left, right, "left", "right"), (right, left, "right", "left")):
            if self._candidate(node, f"{name} -> {a_name} {sign}in {b_name}"):
                return ast.copy_location(ast.Compare(a, [ast.NotIn() if negated else ast.In()], [b]), node)
        for a, b, a_name, b_name in ((left, right, "left", "right"), (right, left, "right", "left")):
            if self._candidate(node, f"{name} -> {sign}{a_name}.startswith({b_name})"):
                call: ast.expr = ast.Call(ast.Attribute(a, "startswith", ast.Load()), [b], [])
                return ast.copy_location(ast.UnaryOp(ast.Not(), call) if negated else call, node)
        return node

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        self.generic_visit(node)
        name = type(node.op).__name__
        other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        if self._candidate(node, f"{name} -> {type(other).__name__}"):
            node.op = other
        # One check of a compound condition forgotten: ``a and b`` -> ``a``, ``a or b or c`` -> ``a or c``.
        for i in range(len(node.values)):
            if self._candidate(node, f"{name}: drop operand {i + 1}"):
                kept = node.values[:i] + node.values[i + 1 :]
                return kept[0] if len(kept) == 1 else ast.copy_location(ast.BoolOp(node.op, kept), node)
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
            if self._candidate(node.test, f"if condition -> {forced}"):
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


def _maybe_text(node: ast.expr) -> bool:
    """Could be a str or bytes: not a number, bool or None constant, a length or an arithmetic result (where
    ``in`` or ``startswith`` would only raise TypeError, a mutant that tells nothing about the tests)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str | bytes)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("len", "int", "sum"):
        return False
    return not isinstance(node, ast.BinOp | ast.UnaryOp)


@dataclass(frozen=True)
class _Function:
    name: str
    first: int  # the body's first line (the def line runs at import, not when the function is called)
    last: int


def _functions(tree: ast.Module) -> list[_Function]:
    """Every function with its qualified name, innermost last for any line they share."""
    found: list[_Function] = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = prefix + child.name
                found.append(_Function(name, child.body[0].lineno, child.end_lineno or child.lineno))
                walk(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                walk(child, prefix + child.name + ".")
            else:
                walk(child, prefix)

    walk(tree, "")
    return found


def _enclosing(functions: Sequence[_Function], line: int) -> _Function | None:
    inside = [f for f in functions if f.first <= line <= f.last]
    return inside[-1] if inside else None


def _statement_lines(tree: ast.Module) -> dict[int, tuple[int, int]]:
    """Line -> the lines of the innermost statement there (for a compound statement, its header)."""
    found: dict[int, tuple[int, int]] = {}
    for node in ast.walk(tree):  # breadth first: inner statements come later and win
        if isinstance(node, ast.stmt):
            body = getattr(node, "body", None)
            last = body[0].lineno - 1 if isinstance(body, list) and body else node.end_lineno or node.lineno
            for line in range(node.lineno, max(node.lineno, last) + 1):
                found[line] = (node.lineno, max(node.lineno, last))
    return found


def _statement_reach(statements: dict[int, tuple[int, int]], first: int, last: int) -> tuple[int, ...]:
    spans = [statements.get(n, (n, n)) for n in range(first, last + 1)]
    return tuple(range(min(a for a, _ in spans), max(b for _, b in spans) + 1))


def _constant_reach(tree: ast.Module, statements: dict[int, tuple[int, int]], line: int) -> tuple[int, ...]:
    """For a private module constant (``_NAME = ...``), the statements that read it; otherwise () (all)."""
    top = next((n for n in tree.body if n.lineno <= line <= (n.end_lineno or n.lineno)), None)
    targets = top.targets if isinstance(top, ast.Assign) else [top.target] if isinstance(top, ast.AnnAssign) else []
    names = {t.id for t in targets if isinstance(t, ast.Name)}
    if not names or len(names) != len(targets) or not all(n.startswith("_") for n in names):
        return ()
    readers = [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in names and isinstance(n.ctx, ast.Load)]
    return tuple(sorted({x for n in readers for x in _statement_reach(statements, n.lineno, n.lineno)}))


def mutants_of(path: Path, root: Path = ROOT) -> list[Mutant]:
    source = path.read_text()
    counter = _Mutator(None)
    counter.visit(ast.parse(source))
    tree = ast.parse(source)
    functions, statements = _functions(tree), _statement_lines(tree)
    rel, seen, lines = str(path.relative_to(root)), Counter[str](), source.splitlines()
    mutants = []
    for index, (first, last, text) in enumerate(counter.found):
        function = _enclosing(functions, first)
        name = function.name if function else _MODULE_LEVEL
        base = f"{rel}::{name}::{text}"
        seen[base] += 1
        key = base if seen[base] == 1 else f"{base}#{seen[base]}"
        reach = _statement_reach(statements, first, last) if function else _constant_reach(tree, statements, first)
        mutants.append(Mutant(rel, index, first, text, name, key, lines[first - 1].strip() if first else "", reach))
    return mutants


def mutated_source(path: Path, index: int) -> str:
    tree = _Mutator(index).visit(ast.parse(path.read_text()))
    return ast.unparse(ast.fix_missing_locations(tree))


# -- the scratch copies ---------------------------------------------------------------------------------------


def _snapshot(root: Path, into: Path) -> Path:
    """The repository's working files (tracked and untracked, not ignored) copied once for the whole run."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root, capture_output=True, check=True
    ).stdout.decode()
    base = into / "base"
    for name in filter(None, listed.split("\0")):
        source = root / name
        if source.is_file() and ".hypothesis" not in source.parts:
            (base / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, base / name)
    return base


def _workdir(base: Path, into: Path, mutant: Mutant | None) -> Path:
    """A copy of the snapshot made of hard links (cheap), with the mutated module as a file of its own."""
    work = Path(tempfile.mkdtemp(prefix="m-", dir=into))
    work.chmod(0o755)  # tests that run gatewayctl as another user import the gateway from here
    shutil.copytree(base, work, dirs_exist_ok=True, copy_function=os.link)
    if mutant is not None:
        target = work / mutant.module
        target.unlink()  # never write through the link into the snapshot
        target.write_text(mutated_source(base / mutant.module, mutant.index))
    return work


# -- running pytest in a forked child ------------------------------------------------------------------------


def _preload() -> None:
    for name in _PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: S112 (an optional plugin missing only costs its import time later)
            continue
    assert "gateway" not in sys.modules, "the gateway is imported from the snapshot only (_preload_gateway)"


def _preload_gateway(base: Path) -> int:
    """Imports every gateway module from the snapshot, once, for the in-place children (``_patch_in_place``).

    Two thirds of a small mutant run was importing the gateway again; a child forked from here patches the
    mutated function's code instead. Classic children drop these modules and import the mutant from disk.
    """
    sys.path.insert(0, str(base))
    import gateway

    assert Path(gateway.__file__).resolve().is_relative_to(base.resolve()), gateway.__file__
    count = 0
    for info in pkgutil.walk_packages(gateway.__path__, "gateway."):
        with contextlib.suppress(Exception):  # a module that cannot load here is imported by the child itself
            importlib.import_module(info.name)
            count += 1
    return count


def _forget_gateway(base: Path) -> None:
    """A classic child: the preloaded gateway gone, so the tests import the (mutated) files of the workdir."""
    for name in [n for n in sys.modules if n == "gateway" or n.startswith("gateway.")]:
        del sys.modules[name]
    sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != base.resolve()]
    importlib.invalidate_caches()


def _code_by_qualname(code: types.CodeType) -> dict[str, types.CodeType]:
    found = {code.co_qualname: code}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found.update(_code_by_qualname(const))
    return found


def _live_functions(module: types.ModuleType) -> list[types.FunctionType]:
    """The module's functions and its classes' methods, unwrapped (static/class methods, properties, caches)."""
    found: dict[int, types.FunctionType] = {}

    def add(value: object, depth: int) -> None:
        while True:
            if isinstance(value, staticmethod | classmethod):
                value = value.__func__
            elif isinstance(value, property):
                for accessor in (value.fget, value.fset, value.fdel):
                    add(accessor, depth)
                return
            elif not isinstance(value, types.FunctionType | type) and hasattr(value, "__wrapped__"):
                value = value.__wrapped__  # functools.lru_cache and friends
            else:
                break
        if isinstance(value, types.FunctionType) and value.__module__ == module.__name__:
            if id(value) not in found:
                found[id(value)] = value
                add(getattr(value, "__wrapped__", None), depth)  # a wrapper made with functools.wraps
        elif isinstance(value, type) and value.__module__ == module.__name__ and depth < 4:
            for member in list(vars(value).values()):
                add(member, depth + 1)

    for value in list(vars(module).values()):
        add(value, 0)
    return list(found.values())


def _patch_in_place(mutant: Mutant, base: Path) -> bool:
    """Gives the preloaded module's functions the mutant's code; False when that cannot stand for the mutant.

    Only the functions whose compiled code changed are patched, each by swapping ``__code__``, so every
    reference to them (``from x import f`` included) runs the mutant. Module-level mutants, and changes to
    something no live function object holds (a module-level lambda), need a classic child.
    """
    if mutant.function == _MODULE_LEVEL:
        return False
    module = sys.modules.get(mutant.module.removesuffix(".py").replace("/", "."))
    if module is None:
        return False
    path = base / mutant.module
    filename = str(path)
    before = _code_by_qualname(compile(ast.unparse(ast.parse(path.read_text())), filename, "exec"))
    after = _code_by_qualname(compile(mutated_source(path, mutant.index), filename, "exec"))
    changed = {name for name, code in after.items() if before.get(name) != code}
    # Functions only (a class body's or the module's code changes with every method in it), outermost only.
    wanted = {name for name in changed if after[name].co_flags & inspect.CO_OPTIMIZED and "<locals>" not in name}
    patched = set()
    for function in _live_functions(module):
        name = function.__code__.co_qualname
        if name in wanted:
            try:
                function.__code__ = after[name]
            except ValueError:  # the mutant changed the function's free variables
                return False
            patched.add(name)
    return bool(changed) and patched == wanted and bool(patched)


class _Select:
    """pytest plugin: keep only the chosen node ids, the quickest test files first (``-x`` stops sooner)."""

    def __init__(self, durations: dict[str, float]) -> None:
        self.durations = durations  # node id -> seconds unmutated

    def pytest_collection_modifyitems(self, config: Any, items: list[Any]) -> None:
        keep = [item for item in items if item.nodeid in self.durations]
        config.hook.pytest_deselected(items=[item for item in items if item.nodeid not in self.durations])
        per_file: dict[str, float] = defaultdict(float)
        for item in keep:
            per_file[item.nodeid.split("::", 1)[0]] += self.durations[item.nodeid]
        items[:] = sorted(keep, key=lambda item: per_file[item.nodeid.split("::", 1)[0]])  # stable within a file


class _Contexts:
    """pytest plugin for the map run: one coverage context per test, durations and failures recorded."""

    def __init__(self, coverage: Any, limit: int) -> None:
        self.coverage = coverage
        self.limit = limit
        self.durations: dict[str, float] = defaultdict(float)
        self.failed: set[str] = set()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: Any, nextitem: Any) -> Iterator[None]:
        os.environ["GW_MUTATE_CONTEXT"] = item.nodeid  # read by subprocesses' coverage (the rc file)
        self.coverage.switch_context(item.nodeid)
        # A test that hangs unmutated must fail (and be reported), not hold up the whole run.
        signal.signal(signal.SIGALRM, _too_slow)
        signal.alarm(self.limit)
        try:
            return (yield)
        finally:
            signal.alarm(0)

    def pytest_runtest_logreport(self, report: Any) -> None:
        self.durations[report.nodeid] += report.duration
        if report.failed:
            self.failed.add(report.nodeid)


def _too_slow(signum: int, frame: object) -> None:
    raise TimeoutError("the test ran longer than --test-timeout without any mutant")


@dataclass
class _Job:
    name: str
    workdir: Path
    args: list[str]
    timeout: float
    plugins: list[Any] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    coverage_rc: Path | None = None
    after: Path | None = None  # where the map run writes its findings
    test_timeout: int = 0  # seconds per test, map run only
    in_place: Mutant | None = None  # patch this mutant into the preloaded gateway instead of importing the file
    keep_gateway: bool = False  # the batch run: its children patch the preloaded gateway themselves
    base: Path | None = None  # the snapshot the parent preloaded the gateway from


def _child(job: _Job, log: Path) -> NoReturn:
    code = 99
    try:
        os.setpgid(0, 0)  # the parent can then end this run and everything it started, by group id
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.chdir(job.workdir)
        patched = job.keep_gateway or bool(job.in_place and _patch_in_place(job.in_place, job.base or ROOT))
        if job.base is not None and not patched:
            if job.in_place:
                print("in-place patch impossible: a classic run (importing the mutated file)", flush=True)
            _forget_gateway(job.base)
        sys.path[:] = [str(job.workdir), *(p for p in sys.path if p and Path(p).resolve() != ROOT)]
        sys.dont_write_bytecode = True
        os.environ.update(PYTHONPATH=str(job.workdir), PYTHONDONTWRITEBYTECODE="1", HYPOTHESIS_PROFILE="mutation")
        os.environ.update(job.env)
        code = _run_pytest(job)
    except BaseException:  # a child reports everything through its exit code and its log
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _run_pytest(job: _Job) -> int:
    if job.coverage_rc is None:
        return int(pytest.main(job.args, plugins=job.plugins))
    import coverage

    cov = coverage.Coverage(config_file=str(job.coverage_rc))
    contexts = _Contexts(cov, job.test_timeout)
    cov.start()
    try:
        code = int(pytest.main(job.args, plugins=[*job.plugins, contexts]))
    finally:
        cov.stop()
        cov.save()
    assert job.after is not None
    job.after.write_text(json.dumps({"durations": contexts.durations, "failed": sorted(contexts.failed)}))
    return code


@dataclass
class _Done:
    job: _Job
    code: int | None  # None: timed out
    seconds: float
    log: Path


def _run_all(jobs: Iterable[_Job], parallel: int, logs: Path) -> Iterable[_Done]:
    """Runs the jobs ``parallel`` at a time in forked children, yielding each as it ends."""
    pending, running = iter(jobs), dict[int, tuple[_Job, float, Path]]()
    exhausted = False
    while True:
        while not exhausted and len(running) < parallel:
            job = next(pending, None)
            if job is None:
                exhausted = True
                break
            log = logs / f"{job.name}.log"
            pid = os.fork()
            if pid == 0:
                _child(job, log)
            running[pid] = (job, time.monotonic(), log)
        if not running:
            return
        yield from _reap(running)


def _reap(running: dict[int, tuple[_Job, float, Path]]) -> Iterable[_Done]:
    pid, status = os.waitpid(-1, os.WNOHANG)
    now = time.monotonic()
    if pid:
        job, started, log = running.pop(pid)
        _end_group(pid)  # whatever the tests left running
        yield _Done(job, os.waitstatus_to_exitcode(status), now - started, log)
        return
    for pid, (job, started, log) in list(running.items()):
        if now - started > job.timeout:
            _end_group(pid)
            os.waitpid(pid, 0)
            del running[pid]
            yield _Done(job, None, now - started, log)
    time.sleep(0.05)


def _end_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


# -- the map: which tests run which lines --------------------------------------------------------------------


@dataclass
class _Map:
    lines: dict[str, dict[int, set[str]]]  # module -> line -> node ids
    durations: dict[str, float]
    failed: list[str]

    def tests_for(self, mutant: Mutant) -> set[str]:
        by_line = self.lines.get(mutant.module, {})
        if not mutant.reach:  # runs at import and is seen from anywhere: everything that reaches the module
            return set().union(*by_line.values()) if by_line else set()
        return set().union(*(by_line.get(line, set()) for line in mutant.reach))


def _coverage_rc(run: Path, work: Path, modules: Sequence[str]) -> Path:
    """One config for the map child and every subprocess it starts (COVERAGE_PROCESS_START)."""
    rc = run / "coverage.rc"
    include = "\n".join(f"    {work / m}" for m in modules)
    rc.write_text(
        f"[run]\ndata_file = {run / 'coverage' / 'data'}\nparallel = true\nsigterm = true\n"
        f"context = ${{GW_MUTATE_CONTEXT}}\ninclude =\n{include}\n"
    )
    # Some tests run gatewayctl as another user: it must read this config and write its coverage data here.
    (run / "coverage").mkdir(mode=0o777)
    (run / "coverage").chmod(0o777)  # whatever the umask
    rc.chmod(0o644)
    return rc


def _build_map(run: Path, base: Path, modules: Sequence[str], args: argparse.Namespace) -> _Map:
    work = _workdir(base, run, None)
    rc = _coverage_rc(run, work, modules)
    findings = run / "map.json"
    job = _Job(
        "map", work, _pytest_args(args.tests, stop_first=False), 4 * 3600, [],
        {"COVERAGE_PROCESS_START": str(rc), "GW_MUTATE_CONTEXT": ""}, rc, findings, args.test_timeout,
        base=base if args.preloaded else None,
    )  # fmt: skip
    (done,) = _run_all([job], 1, run)
    if done.code is None or not findings.exists():
        sys.exit(f"the unmutated run did not finish: see {done.log}")
    recorded = json.loads(findings.read_text())
    return _Map(_read_coverage(rc, work, modules), recorded["durations"], recorded["failed"])


def _read_coverage(rc: Path, work: Path, modules: Sequence[str]) -> dict[str, dict[int, set[str]]]:
    import coverage

    cov = coverage.Coverage(config_file=str(rc))
    cov.combine()
    data = cov.get_data()
    lines: dict[str, dict[int, set[str]]] = {}
    for module in modules:
        by_line = data.contexts_by_lineno(str(work / module))
        lines[module] = {n: {c for c in ctx if c} for n, ctx in by_line.items()}
    return lines


def _pytest_args(tests: list[str], *, stop_first: bool) -> list[str]:
    # The preloaded plugins cannot have their asserts rewritten (they were imported first): pytest's warning
    # about that would be an error under the project's filterwarnings, and says nothing about the tests.
    quiet = ["-q", "-p", "no:cacheprovider", "--no-header", "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    # One process, tests in file order: the suite's ``-n auto`` (addopts) would start a worker per core for
    # every mutant, and the map's coverage contexts are recorded in this process only.
    serial = ["-n", "0", "-p", "no:randomly"]
    return [*(["-x"] if stop_first else []), *serial, *quiet, *tests]


def tests_for_modules(modules: Sequence[str]) -> list[str]:
    """The union of each module's own tests (MODULE_TESTS), or DEFAULT_TESTS when one has none listed."""
    chosen: list[str] = []
    for module in modules:
        prefixes = [p for p in MODULE_TESTS if module.startswith(p)]
        if not prefixes:
            return DEFAULT_TESTS
        chosen += [t for t in MODULE_TESTS[max(prefixes, key=len)] if t not in chosen and (ROOT / t).exists()]
    return chosen


# -- the mutant runs and the report --------------------------------------------------------------------------


def _mutant_jobs(
    chosen: list[Mutant], found: _Map, run: Path, base: Path, args: Any, *, in_place: bool
) -> Iterable[tuple[Mutant, _Job | None, int]]:
    for mutant in chosen:
        selected = found.tests_for(mutant) - set(found.failed)
        if not selected:
            yield mutant, None, 0
            continue
        # Generous: other work on the machine slows a survivor down, and a timeout would count as a kill.
        budget = min(args.timeout, 60 + 5 * sum(found.durations.get(t, 0) for t in selected))
        files = sorted({t.split("::", 1)[0] for t in selected})
        name = f"{mutant.module.replace('/', '.')}-{mutant.index:04d}"
        plugin = _Select({t: found.durations.get(t, 0.0) for t in selected})
        job = _Job(name, _workdir(base, run, mutant), _pytest_args(files, stop_first=True), budget, [plugin])
        job.base = base if args.preloaded else None
        job.in_place = mutant if in_place else None
        yield mutant, job, len(selected)


def _status(done: _Done) -> tuple[str, str]:
    if done.code is None:
        return "timeout", f"no verdict within {done.job.timeout:.0f}s"
    lines = done.log.read_text(errors="replace").strip().splitlines() if done.log.exists() else []
    tail = f"exit {done.code}: {lines[-1] if lines else ''}"
    # pytest: 0 passed, 1 a test failed, 2 interrupted (a collection error: the mutant broke an import),
    # 3 internal error (a test's failure escaped pytest, e.g. an unclosed connection after a mutant's
    # exception): the unmutated run passed, so the mutant caused each. 4 usage error, 5 no tests
    # collected, and 99 (the child itself failed) are the tool's fault, never a kill.
    return {0: "survived", 1: "killed", 2: "killed", 3: "killed"}.get(done.code, "error"), tail


def _execute(chosen: list[Mutant], found: _Map, run: Path, base: Path, args: Any) -> list[Outcome]:
    """Every mutant in the batch (collected once, each mutant patched into a fork), then the rest — survivors,
    module-level mutants — the classic way (the mutated file imported afresh): a verdict of "survived" is
    only ever given by a classic run."""
    if not args.preloaded:
        return _execute_pass(chosen, found, run, base, args, in_place=False)
    first, again = _execute_batch(chosen, found, run, base, args)
    # A mutant docs/mutation-testing.md lists as equivalent that the batch could not kill keeps that verdict:
    # confirming it would only cost a classic run (the table is what says it survives).
    listed = equivalent_keys()
    first += [Outcome(m, "survived", 0, 0, "in the batch; listed as equivalent") for m in again if m.key in listed]
    again = [m for m in again if m.key not in listed]
    if again:
        print(f"{len(again)} mutant(s) again with the mutated file imported afresh", flush=True)
    confirmed = _execute_pass(again, found, run, base, args, in_place=False) if again else []
    return sorted(first + confirmed, key=lambda o: (o.mutant.module, o.mutant.index))


class _Batch:
    """pytest plugin: collect the tests once, then run each mutant in a child forked after collection.

    The child patches the mutant into the preloaded gateway (``_patch_in_place``) and runs the mutant's tests,
    quickest files first, stopping at the first failure. A mutant then costs its tests, not a pytest start.
    An unmutated control run goes first: if it fails, nothing is judged here.
    """

    def __init__(self, plan: list[tuple[Mutant, dict[str, float], float]], base: Path, results: Path) -> None:
        self.plan = plan
        self.base = base
        self.results = results
        self.failed = False

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.failed:
            self.failed = True

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: Any) -> bool:
        by_id = {item.nodeid: item for item in session.items}
        control = dict(self.plan[0][1]) if self.plan else {}
        with self.results.open("a") as out:
            for mutant, durations, budget in [(None, control, 600.0), *self.plan]:
                status, seconds, detail = self._one(session, mutant, _ordered(by_id, durations), budget)
                key = mutant.key if mutant else "control"
                out.write(json.dumps({"key": key, "status": status, "seconds": seconds, "detail": detail}) + "\n")
                out.flush()
                if mutant is None and status != "survived":
                    break  # the unmutated tests fail in a fork: judge every mutant the classic way
        return True

    def _one(self, session: Any, mutant: Mutant | None, items: list[Any], budget: float) -> tuple[str, float, str]:
        started = time.monotonic()
        log = self.results.parent / f"batch-{mutant.index if mutant else 'control'}.log"
        pid = os.fork()
        if pid == 0:
            self._child(session, mutant, items, log)
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            seconds = round(time.monotonic() - started, 2)
            if done:
                _end_group(pid)
                code = os.waitstatus_to_exitcode(status)
                verdict = {0: "survived", 1: "killed", 98: "classic"}.get(code, "error")
                return verdict, seconds, f"exit {code}"
            if seconds > budget:
                _end_group(pid)
                os.waitpid(pid, 0)
                return "timeout", seconds, f"no verdict within {budget:.0f}s"
            time.sleep(0.01)

    def _child(self, session: Any, mutant: Mutant | None, items: list[Any], log: Path) -> NoReturn:
        code = 99
        try:
            os.setpgid(0, 0)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            if mutant is not None and not _patch_in_place(mutant, self.base):
                code = 98
            else:
                self.failed = False
                for i, item in enumerate(items):
                    following = items[i + 1] if i + 1 < len(items) else None
                    item.ihook.pytest_runtest_protocol(item=item, nextitem=following)
                    if self.failed:
                        break
                code = 1 if self.failed else 0
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)


def _ordered(by_id: dict[str, Any], durations: dict[str, float]) -> list[Any]:
    """The chosen tests in collection order, the quickest files first (as ``_Select``)."""
    per_file: dict[str, float] = defaultdict(float)
    for nodeid, seconds in durations.items():
        per_file[nodeid.split("::", 1)[0]] += seconds
    keep = [item for nodeid, item in by_id.items() if nodeid in durations]
    return sorted(keep, key=lambda item: per_file[item.nodeid.split("::", 1)[0]])


def _execute_batch(
    chosen: list[Mutant], found: _Map, run: Path, base: Path, args: Any
) -> tuple[list[Outcome], list[Mutant]]:
    """(verdicts given by the batch, mutants still to run the classic way)."""
    outcomes: list[Outcome] = []
    classic: list[Mutant] = []
    plan: list[tuple[Mutant, dict[str, float], float]] = []
    for mutant in chosen:
        selected = found.tests_for(mutant) - set(found.failed)
        if not selected:
            outcomes.append(Outcome(mutant, "uncovered", 0, 0, "no test runs this statement"))
            _print(outcomes[-1])
        elif mutant.function == _MODULE_LEVEL:
            classic.append(mutant)
        else:
            budget = min(args.timeout, 60 + 5 * sum(found.durations.get(t, 0) for t in selected))
            plan.append((mutant, {t: found.durations.get(t, 0.0) for t in selected}, budget))
    if not plan:
        return outcomes, classic
    files = sorted({t.split("::", 1)[0] for _, durations, _ in plan for t in durations})
    results = run / "batch.jsonl"
    print(f"batch: {len(plan)} mutants in one collection ({results})", flush=True)
    job = _Job("batch", _workdir(base, run, None), _pytest_args(files, stop_first=False),
               sum(b for *_, b in plan) + 900, [_Batch(plan, base, results)], base=base, keep_gateway=True)  # fmt: skip
    (done,) = _run_all([job], 1, run)
    rows = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    judged = {row["key"]: row for row in rows}
    control = judged.get("control", {"status": "missing"})
    if control["status"] != "survived":
        print(f"batch control run did not pass ({control['status']}; {done.log}): all mutants the classic way")
        return outcomes, classic + [m for m, *_ in plan]
    for mutant, durations, _ in plan:
        row = judged.get(mutant.key)
        if row is None or row["status"] in ("survived", "classic", "error"):
            classic.append(mutant)
            continue
        outcomes.append(Outcome(mutant, row["status"], row["seconds"], len(durations), row["detail"]))
        _print(outcomes[-1])
    return outcomes, classic


def _execute_pass(chosen: list[Mutant], found: _Map, run: Path, base: Path, args: Any, *, in_place: bool
                  ) -> list[Outcome]:  # fmt: skip
    outcomes: list[Outcome] = []
    planned = {}
    uncovered = []

    def jobs() -> Iterable[_Job]:
        for mutant, job, count in _mutant_jobs(chosen, found, run, base, args, in_place=in_place):
            if job is None:
                uncovered.append(Outcome(mutant, "uncovered", 0, 0, "no test runs this statement"))
                _print(uncovered[-1])
                continue
            planned[job.name] = (mutant, count)
            yield job

    for done in _run_all(jobs(), args.jobs, run):
        mutant, count = planned[done.job.name]
        status, detail = _status(done)
        outcomes.append(Outcome(mutant, status, done.seconds, count, detail))
        _print(outcomes[-1])
        shutil.rmtree(done.job.workdir, ignore_errors=True)
    return sorted(outcomes + uncovered, key=lambda o: (o.mutant.module, o.mutant.index))


def _print(outcome: Outcome) -> None:
    m = outcome.mutant
    mark = "killed  " if outcome.killed else outcome.status.upper()
    print(f"{mark} {m.module}:{m.line} #{m.index} {m.description} [{outcome.tests} tests, {outcome.seconds:.0f}s]",
          flush=True)  # fmt: skip


def equivalent_keys(doc: Path = EQUIVALENTS_DOC) -> set[str]:
    return set(_EQUIVALENT_ROW.findall(doc.read_text())) if doc.exists() else set()


def summary(outcomes: list[Outcome], equivalents: set[str]) -> dict[str, Any]:
    modules: dict[str, Counter[str]] = defaultdict(Counter)
    for o in outcomes:
        row = modules[o.mutant.module]
        row["mutants"] += 1
        row["killed" if o.killed else "equivalent" if o.mutant.key in equivalents else "survived"] += 1
        row["errors"] += o.status == "error"
    total = sum((Counter(c) for c in modules.values()), Counter[str]())
    judged = total["mutants"] - total["equivalent"]
    score = 100 * total["killed"] / judged if judged else 100.0
    return {"modules": {m: dict(c) for m, c in sorted(modules.items())}, "total": dict(total), "score": score}


def _report(outcomes: list[Outcome], equivalents: set[str], seconds: float) -> dict[str, Any]:
    result = summary(outcomes, equivalents)
    print(f"\n{'module':45} mutants killed survived equivalent")
    for module, c in result["modules"].items():
        counts = (c.get(n, 0) for n in ("killed", "survived", "equivalent"))
        print(f"{module:45} {c['mutants']:7} {next(counts):6} {next(counts):8} {next(counts):10}")
    print(f"score: {result['score']:.1f}% killed, equivalent mutants excluded ({seconds / 60:.1f} min)")
    ran = sorted(o.seconds for o in outcomes if o.tests)
    if ran:
        print(f"per mutant: median {ran[len(ran) // 2]:.1f}s, mean {sum(ran) / len(ran):.1f}s over {len(ran)} runs")
    for o in outcomes:
        if not o.killed and o.mutant.key not in equivalents:
            print(f"  {o.status}: `{o.mutant.key}`  line {o.mutant.line}: {o.mutant.source}")
    stale = sorted(k for k in equivalents if k in {o.mutant.key for o in outcomes if o.killed})
    for key in stale:
        print(f"  listed as equivalent but killed: `{key}`")
    return result


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="+", help="source files to mutate, e.g. gateway/keys/keyring.py")
    parser.add_argument("--tests", nargs="+",
                        help="test files or directories for the map run (default: the modules' own tests, "
                             "MODULE_TESTS, else tests/)")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=2, help="mutants run in parallel (default 2)")
    parser.add_argument("--timeout", type=float, default=900, help="upper bound in seconds per mutant (default 900)")
    parser.add_argument("--test-timeout", type=int, default=120,
                        help="seconds one test may take in the unmutated run (default 120)")  # fmt: skip
    parser.add_argument("--only", type=int, action="append", help="only mutants on this line (repeatable)")
    parser.add_argument("--rerun", metavar="REPORT", help="only the mutants a previous --json report left alive")
    parser.add_argument("--list", action="store_true", help="list the mutants with their keys and stop")
    parser.add_argument("--skip-failing", action="store_true",
                        help="drop tests that fail unmutated instead of stopping (say so when reporting)")  # fmt: skip
    parser.add_argument("--json", metavar="FILE", help="write the counts and every outcome here")
    parser.add_argument("--fail-under", type=float, metavar="PERCENT", help="exit 1 when the score is lower")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs) after the run")
    parser.add_argument(
        "--classic",
        dest="preloaded",
        action="store_false",
        help="import the mutated file in every child (slower) instead of patching the mutated "
        "function into a gateway preloaded once; survivors are always confirmed this way",
    )
    return parser.parse_args()


def _chosen(root: Path, args: argparse.Namespace) -> list[Mutant]:
    args.tests = args.tests or tests_for_modules(args.modules)
    mutants = [m for module in args.modules for m in mutants_of(root / module, root)]
    if args.rerun:
        alive = {row["key"] for row in json.loads(Path(args.rerun).read_text())["mutants"] if row["status"] not in
                 ("killed", "timeout")}  # fmt: skip
        mutants = [m for m in mutants if m.key in alive]
    return [m for m in mutants if not args.only or m.line in args.only]


def main() -> int:
    args = _arguments()
    if args.list:
        for m in _chosen(ROOT, args):
            print(f"{m.module}:{m.line} #{m.index} `{m.key}`  {m.source}")
        return 0
    started = time.monotonic()
    _preload()
    run = Path(tempfile.mkdtemp(prefix="gw-mutate-"))
    run.chmod(0o755)  # see _workdir
    try:
        base = _snapshot(ROOT, run)  # mutants, map and runs all read this copy, never the live checkout
        if args.preloaded:
            print(f"preloaded {_preload_gateway(base)} gateway modules", flush=True)
        chosen = _chosen(base, args)
        print(f"{len(chosen)} mutants in {len(args.modules)} module(s); mapping {' '.join(args.tests)}", flush=True)
        found = _build_map(run, base, args.modules, args)
        if found.failed and not args.skip_failing:
            print("tests fail without any mutant (fix them, or --skip-failing):", *found.failed, sep="\n  ")
            return 2
        print(f"map ready ({time.monotonic() - started:.0f}s); skipped as failing: {len(found.failed)}", flush=True)
        outcomes = _execute(chosen, found, run, base, args)
    finally:
        if not args.keep:
            shutil.rmtree(run, ignore_errors=True)
    equivalents = equivalent_keys()
    result = _report(outcomes, equivalents, time.monotonic() - started)
    if args.json:
        rows = [{**o.mutant.__dict__, "status": o.status, "tests": o.tests, "seconds": round(o.seconds, 1),
                 "equivalent": o.mutant.key in equivalents, "detail": o.detail} for o in outcomes]  # fmt: skip
        Path(args.json).write_text(json.dumps({**result, "failing_unmutated": found.failed, "mutants": rows}, indent=1))
    return 1 if args.fail_under is not None and result["score"] < args.fail_under else 0


if __name__ == "__main__":
    sys.exit(main())

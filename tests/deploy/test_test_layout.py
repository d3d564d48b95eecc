"""The tests' own house rules: the fault tests' helpers live in a support module (fault_support.py), not in a
test module the others import; no test helper ships inside the packages; no test class runs the tests of
the class it extends a second time; the Redis databases the tests use are named in one table,
tests/redis_databases.py."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
TESTS = ROOT / "tests"
PACKAGES = ("bounty", "classifier", "contracts")
TABLE = TESTS / "redis_databases.py"


def modules() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(), str(path)) for path in sorted(TESTS.rglob("*.py"))}


def test_no_test_module_imports_the_fault_helpers_from_a_fault_test() -> None:
    importers = []
    for path, tree in modules().items():
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            faults = [name for name in names if name.startswith("test_faults")]
            importers += [f"{path.relative_to(ROOT)} imports {name}" for name in faults]
    assert importers == [], "what the fault tests share lives in tests/bounty/fault_support.py"


def test_no_test_class_runs_the_tests_it_inherits_again() -> None:
    """A TestCase that extends one with test methods runs each of them again: share a base without tests."""
    classes: dict[str, tuple[Path, list[str], list[str]]] = {}
    for path, tree in modules().items():
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                functions = [item for item in node.body if isinstance(item, ast.FunctionDef)]
                tests = [function.name for function in functions if function.name.startswith("test")]
                bases = [base.id for base in node.bases if isinstance(base, ast.Name)]
                classes[node.name] = (path, bases, tests)

    def inherited(name: str, seen: frozenset[str] = frozenset()) -> list[str]:
        if name not in classes or name in seen:
            return []
        _, bases, _ = classes[name]
        found: list[str] = []
        for base in bases:
            found += [f"{base}.{test}" for test in classes.get(base, (None, [], []))[2]]
            found += inherited(base, seen | {name})
        return found

    rerun = {name: inherited(name) for name in classes if inherited(name)}
    assert rerun == {}


def test_test_helpers_do_not_ship_in_the_packages() -> None:
    shipped = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path.name.startswith("test_") or path.stem.endswith(("_testing", "test_support"))
    ]
    assert shipped == []


def test_the_redis_databases_of_the_tests_are_named_in_one_table() -> None:
    """No database number on the default server (this machine's port 6379) is written outside the table."""
    database_url = re.compile(r"(127\.0\.0\.1|localhost):6379/\d")
    sources = [*TESTS.rglob("*.py"), ROOT / "deploy" / "smoke.sh", ROOT / "scripts" / "test-services.sh"]
    elsewhere = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sources
        if path != TABLE
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if database_url.search(line)
    ]
    assert elsewhere == []
    assert '"redis://127.0.0.1:6379"' in TABLE.read_text()

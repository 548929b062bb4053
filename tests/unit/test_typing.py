"""The engine's public functions carry type hints, so mypy (CI stage "style", mypy.ini) can check their callers.

mypy checks the bodies of every function (check_untyped_defs) but cannot make a new public function come
with hints; this test does, by reading the source: a public function or method (module level or in a
public class, name without a leading '_', or __init__) needs a return annotation and an annotation on
every parameter but self and cls.  Private helpers and functions nested in functions are left free.
"""

import ast
import os
import subprocess
import sys

import pytest

ENGINE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "plugins", "module_utils"
)
# What mypy.ini checks: the whole engine, every package and the package __init__ files.
TYPED_ROOT = os.path.join(ENGINE, "pgsafe")


def _is_public(name):
    return name == "__init__" or not name.startswith("_")


def _public_functions(tree):
    """(qualified name, def node) of every public function and method of a module."""

    def walk(body, prefix):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_public(node.name):
                yield prefix + node.name, node
            elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                yield from walk(node.body, prefix + node.name + ".")
            elif isinstance(node, ast.If):  # a def under `if TYPE_CHECKING:` or a version test
                yield from walk(node.body + node.orelse, prefix)

    yield from walk(tree.body, "")


def missing_hints(source):
    """['name: what is missing', ...] for the public functions of a module's source."""
    problems = []
    for name, node in _public_functions(ast.parse(source)):
        args = node.args
        params = args.posonlyargs + args.args + args.kwonlyargs
        params += [a for a in (args.vararg, args.kwarg) if a is not None]
        missing = [p.arg for p in params if p.annotation is None and p.arg not in ("self", "cls")]
        if missing:
            problems.append("%s: no annotation on %s" % (name, ", ".join(missing)))
        if node.returns is None:
            problems.append("%s: no return annotation" % name)
    return problems


def _typed_files():
    for directory, subdirs, names in os.walk(TYPED_ROOT):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
        for name in sorted(names):
            if name.endswith(".py"):
                yield os.path.join(directory, name)


def test_every_public_function_of_the_typed_packages_has_hints():
    problems, checked = [], 0
    for path in _typed_files():
        with open(path, encoding="utf-8") as fh:
            source = fh.read()
        checked += len(list(_public_functions(ast.parse(source))))
        problems += ["%s: %s" % (os.path.relpath(path, ENGINE), p) for p in missing_hints(source)]
    assert checked > 300, "the walk found only %d public functions: is it still reading the engine?" % checked
    assert not problems, "public functions without type hints:\n" + "\n".join(problems)


SAMPLE = """
def typed(a: int, *rest: str, flag: bool = False, **extra: int) -> None: ...
def no_return(a: int): ...
def bare(a, b: int) -> int: ...
def variadic(*args, **kwargs) -> None: ...
def _private(a): ...
class Store:
    def __init__(self, a): ...
    @classmethod
    def make(cls) -> "Store": ...
    def get(self, key) -> int:
        def local(x): ...
    def _helper(self, x): ...
class _Hidden:
    def run(self, x): ...
"""


def test_the_check_names_each_missing_hint_and_leaves_private_code_alone():
    assert missing_hints(SAMPLE) == [
        "no_return: no return annotation",
        "bare: no annotation on a",
        "variadic: no annotation on args, kwargs",
        "Store.__init__: no annotation on a",
        "Store.__init__: no return annotation",
        "Store.get: no annotation on key",
    ]


@pytest.mark.parametrize("command", ["archive-wal", "restore-wal"])
def test_the_wal_commands_do_not_import_typing(tmp_path, command):
    """PostgreSQL runs these once per WAL segment: the hints are for mypy only (TYPE_CHECKING blocks), never
    an import of typing, which would cost every segment milliseconds."""
    segment = "000000010000000000000001"
    source = tmp_path / segment
    source.write_bytes(bytes(16 * 1024))
    archive = str(tmp_path / "wal")
    if command == "archive-wal":
        args = ["archive-wal", "--archive-dir", archive, str(source), segment]
    else:
        os.mkdir(archive, 0o700)
        (tmp_path / "wal" / segment).write_bytes(bytes(16 * 1024))
        args = ["restore-wal", "--archive-dir", archive, segment, str(tmp_path / "RECOVERYXLOG")]
    code = (
        "import sys; sys.path.insert(0, %r); from pgsafe.cli.main import main; rc = main(sys.argv[1:]); "
        "print('typing' in sys.modules); sys.exit(rc)" % ENGINE
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code, "--backup-dir", str(tmp_path)] + args,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"

"""What the layout promises, checked by reading the code (`ast`), so it cannot drift.

Imports go one way. From the top, a module may import any module of a lower layer, and any
module of its own domain; within the layers marked open, modules of different domains may
import each other too (they hold entry points, documents or plumbing, not rules):

    entry points (open)    main, cli, deps, server, middleware, limits, openapi, every router,
                           idempotency/middleware, notifications/scheduler (the periodic job),
                           books/demo (`seed-demo`)
    accounts, catalogue    users, books, stats, privacy (retention, export, erasure)
    sign-in                auth
    circulation            loans (borrow, return, renew; the consistency checker)
    the queue              reservations
    notifications          creation, scan, outbox, reading, lease
    fines, idempotency
    copy and slot state    copies (and which reader has a copy out: reservations ask it)
    files                  storage backends, uploads, downloads
    documents (open)       every models.py and schemas.py
    foundation (open)      clock, config, db, errors, security, pagination

In short: books -> reservations -> copies <- loans; loans -> reservations -> notifications;
copy and slot counters move only through copies/ (service, slots); notifications call no other
domain's service (the periodic scan that expires holds is a job, in the scheduler).

Between domains, the imports of their closed modules (neither open layer) go one way too:
no domain depends on another that depends back on it, whichever modules carry the imports.

The other rules: the import graph has no cycle, function-local imports included (a local
import must not hide one); only service modules reach the database, with the exceptions
named in DATABASE_EXCEPTIONS; the copy and slot counters are written only by
copies/service.py and copies/slots.py; the wall clock is read only by clock.py (monotonic
timers are fine); no file over 400 lines; no utils.py. Each rule has a test that a
violation fails it.
"""

import ast
import fnmatch
from collections.abc import Iterable, Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "library_api"
MAX_LINES = 400

# (name, patterns, open). A pattern is a module ("books.demo"), a domain ("loans") or a
# glob over modules ("*.router"); the most specific match decides.
LAYERS: tuple[tuple[str, frozenset[str], bool], ...] = (
    (
        "entry points",
        frozenset(
            {
                "main",
                "cli",
                "deps",
                "server",
                "middleware",
                "limits",
                "openapi",
                "*.router",
                "idempotency.middleware",
                "notifications.scheduler",
                "books.demo",
            }
        ),
        True,
    ),
    ("accounts, catalogue", frozenset({"users", "books", "stats", "privacy"}), False),
    ("sign-in", frozenset({"auth"}), False),
    ("circulation", frozenset({"loans"}), False),
    ("the queue", frozenset({"reservations"}), False),
    ("notifications", frozenset({"notifications"}), False),
    ("fines, idempotency", frozenset({"fines", "idempotency"}), False),
    ("copy and slot state", frozenset({"copies"}), False),
    ("files", frozenset({"files"}), False),
    ("documents", frozenset({"*.models", "*.schemas"}), True),
    (
        "foundation",
        frozenset({"clock", "config", "db", "errors", "security", "pagination"}),
        True,
    ),
)

# Modules other than a domain's service.py that may query the database, and why.
DATABASE_EXCEPTIONS = {
    "loans/consistency.py": "recomputes every counter from all the collections and repairs it",
    "loans/history.py": "moves returned loans to their own collection; reads over both",
    "notifications/archive.py": "moves notifications past their use to their own collection",
    "books/imports.py": "the CSV import's batched writes, a job of its own beside the catalogue",
    "notifications/creation.py": "the notifications service, split along its seams",
    "notifications/scan.py": "the notifications service, split along its seams",
    "notifications/outbox.py": "the notifications service, split along its seams",
    "notifications/lease.py": "the notifications service, split along its seams",
    "copies/slots.py": "the reader's loan slots, beside copies/service.py (the book's copies)",
    "db.py": "opens the database, builds the indexes",
    "files/gridfs_backend.py": "a storage backend keeping the files in GridFS collections",
}

# Modules that may read the wall clock, and why; everything else asks `clock.now()`.
CLOCK_EXCEPTIONS = {
    "clock.py": "the one source of time",
    "files/storage.py": "file modification times come from the OS's wall clock",
    "files/gridfs_backend.py": "GridFS `uploadDate` is written by the driver from the wall clock",
}

COUNTERS = frozenset(
    {
        "total_copies",
        "available_copies",
        "held_copies",
        "loaned_copies",
        "loans_ever",
        "active_loans",
        "loans_due",
        "waiting_readers",
    }
)
# A book's copies, and a reader's loan slots.
COUNTER_OWNERS = frozenset({"copies/service.py", "copies/slots.py"})

# Beanie class-level queries, and instance writes that take no argument.
_QUERIES = frozenset(
    {
        "find",
        "find_one",
        "find_all",
        "find_many",
        "get",
        "aggregate",
        "count",
        "distinct",
        "insert_many",
        "insert_one",
        "delete_all",
        "update_all",
        "bulk_writer",
    }
)
_INSTANCE_WRITES = frozenset({"insert", "save", "replace", "save_changes", "delete", "sync"})
_COLLECTION_GETTERS = frozenset(
    {"get_pymongo_collection", "get_motor_collection", "get_collection", "get_database"}
)
_DATABASE_NAMES = frozenset({"database", "db", "client"})
_WALL_CLOCK = frozenset(
    {
        ("datetime", "now"),
        ("datetime", "utcnow"),
        ("datetime", "today"),
        ("date", "today"),
        ("time", "time"),
        ("time", "time_ns"),
    }
)


# --- reading the source --------------------------------------------------------------------


def module_name(path: Path) -> str:
    """`loans.service` for src/library_api/loans/service.py."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def relative(path: Path) -> str:
    return path.relative_to(SRC).as_posix()


def sources() -> dict[str, ast.Module]:
    """Every module of the package by name, parsed."""
    return {module_name(p): ast.parse(p.read_text()) for p in sorted(SRC.rglob("*.py"))}


def _is_package(module: str, known: Iterable[str]) -> bool:
    return any(m.startswith(module + ".") for m in known) or module == ""


def imports(module: str, tree: ast.Module, known: set[str]) -> Iterator[tuple[str, int, bool]]:
    """(imported module of the package, line, inside a function) for each import."""
    functions = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for inner in ast.walk(node)
    }
    package = module.split(".") if _is_package(module, known) else module.split(".")[:-1]
    for node in ast.walk(tree):
        local = id(node) in functions
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("library_api."):
                    yield alias.name.removeprefix("library_api."), node.lineno, local
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            elif node.module and node.module.startswith("library_api"):
                target = node.module.removeprefix("library_api").lstrip(".")
            else:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}" if target else alias.name
                yield (sub if sub in known else target), node.lineno, local


# --- the rules ------------------------------------------------------------------------------


def domain(module: str) -> str:
    return module.split(".")[0]


Layers = tuple[tuple[str, frozenset[str], bool], ...]


def layer_of(module: str, layers: Layers = LAYERS) -> int | None:
    """Index of the module's layer (0 is the top); None when no layer declares it."""
    best: tuple[int, int] | None = None  # (specificity, layer)
    for index, (_, patterns, _) in enumerate(layers):
        for pattern in patterns:
            if pattern == module:
                rank = 3
            elif "*" in pattern and fnmatch.fnmatchcase(module, pattern):
                rank = 2
            elif pattern == domain(module):
                rank = 1
            else:
                continue
            if best is None or rank > best[0]:
                best = (rank, index)
    return None if best is None else best[1]


def direction_violations(trees: dict[str, ast.Module]) -> list[str]:
    known = set(trees)
    found: list[str] = []
    for module, tree in trees.items():
        if module == "":
            continue
        mine = layer_of(module)
        if mine is None:
            found.append(f"{module}: in no layer of LAYERS")
            continue
        for target, line, _ in imports(module, tree, known):
            if target == "" or domain(target) == domain(module):
                continue
            theirs = layer_of(target)
            if theirs is None:
                continue  # reported as a module of its own
            if theirs > mine or (theirs == mine and LAYERS[mine][2]):
                continue
            found.append(
                f"{module}:{line} imports {target} "
                f"({LAYERS[mine][0]} may not import {LAYERS[theirs][0]})"
            )
    return found


def import_cycles(trees: dict[str, ast.Module]) -> list[list[str]]:
    """Every cycle of the import graph, imports inside functions included."""
    known = set(trees)
    graph = {
        module: {t for t, _, _ in imports(module, tree, known) if t in known and t != module}
        for module, tree in trees.items()
    }
    return _cycles(graph)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    # Tarjan's strongly connected components; one with two or more modules is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


def domain_cycles(trees: dict[str, ast.Module], layers: Layers = LAYERS) -> list[list[str]]:
    """Cycles between domains, through imports whose both ends are in closed layers."""
    known = set(trees)

    def closed(module: str) -> bool:
        layer = layer_of(module, layers)
        return "." in module and layer is not None and not layers[layer][2]

    graph: dict[str, set[str]] = {}
    for module, tree in trees.items():
        if not closed(module):
            continue
        for target, _, _ in imports(module, tree, known):
            if closed(target) and domain(target) != domain(module):
                graph.setdefault(domain(module), set()).add(domain(target))
    return _cycles(graph)


def _is_service(path: str) -> bool:
    return path.endswith("/service.py") or path in DATABASE_EXCEPTIONS


def document_classes(trees: dict[str, ast.Module]) -> set[str]:
    return {
        node.name
        for tree in trees.values()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any(isinstance(b, ast.Name) and b.id == "Document" for b in node.bases)
    }


def database_access(tree: ast.Module, documents: set[str]) -> list[int]:
    """Lines that query the database or reach a collection."""
    lines: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            on_document = isinstance(node.value, ast.Name) and node.value.id in documents
            if node.attr in _COLLECTION_GETTERS or (on_document and node.attr in _QUERIES):
                lines.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in _INSTANCE_WRITES and not node.args and not node.keywords:
                lines.append(node.lineno)
        elif isinstance(node, ast.Subscript):
            value = node.value
            name = value.attr if isinstance(value, ast.Attribute) else getattr(value, "id", "")
            if name.lstrip("_") in _DATABASE_NAMES and isinstance(
                node.slice, ast.Constant | ast.JoinedStr
            ):
                lines.append(node.lineno)
    return sorted(set(lines))


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def wall_clock_reads(tree: ast.Module) -> list[int]:
    """Lines that read the wall clock: datetime.now/utcnow/today, date.today, time.time."""
    lines: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            owner = _dotted(node.value).split(".")[-1]
            if (owner, node.attr) in _WALL_CLOCK:
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and any(
            (node.module, a.name) in _WALL_CLOCK for a in node.names
        ):
            lines.append(node.lineno)
    return lines


def counter_writes(tree: ast.Module) -> list[int]:
    """Lines of an update (`$inc`, `$set`) that names a copy or slot counter."""
    lines: list[int] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Dict):
            continue
        for key, value in zip(node.keys, node.values, strict=True):
            if not (isinstance(key, ast.Constant) and key.value in ("$inc", "$set")):
                continue
            if isinstance(value, ast.Dict) and any(
                isinstance(k, ast.Constant) and k.value in COUNTERS for k in value.keys
            ):
                lines.append(node.lineno)
    return lines


# --- the tests --------------------------------------------------------------------------------


def _parse(**modules: str) -> dict[str, ast.Module]:
    return {name.replace("__", "."): ast.parse(text) for name, text in modules.items()}


def test_imports_follow_the_declared_direction() -> None:
    assert direction_violations(sources()) == []


def test_an_import_against_the_direction_fails() -> None:
    trees = _parse(
        copies__service="from ..loans import service\n",
        loans__service="from ..copies import service as copies\n",
        notifications__scan="from ..reservations import service\n",
        reservations__service="from ..notifications.creation import announce_ready\n",
        notifications__creation="",
        loans__router="from ..reservations import service\n",
        newdomain__service="",
    )
    assert direction_violations(trees) == [
        "copies.service:1 imports loans.service (copy and slot state may not import circulation)",
        "notifications.scan:1 imports reservations.service "
        "(notifications may not import the queue)",
        "newdomain.service: in no layer of LAYERS",
    ]


def test_the_import_graph_has_no_cycle() -> None:
    assert import_cycles(sources()) == []


def test_a_function_local_import_that_hides_a_cycle_fails() -> None:
    trees = _parse(
        reservations__service="from ..notifications import service\n",
        notifications__service=(
            "async def scan():\n    from ..reservations import service\n    return service\n"
        ),
    )
    assert import_cycles(trees) == [["notifications.service", "reservations.service"]]
    assert import_cycles(_parse(a="from . import b\n", b="")) == []


def test_domains_do_not_depend_on_each_other_both_ways() -> None:
    assert domain_cycles(sources()) == []


def test_a_domain_cycle_through_different_modules_fails() -> None:
    # The layout before: loans.queries placed below the queue, so each import followed the
    # layers and the module graph had no cycle, yet loans and reservations leant on each other.
    before = tuple(
        (name, patterns | {"loans.queries"} if name == "copy and slot state" else patterns, is_open)
        for name, patterns, is_open in LAYERS
    )
    trees = _parse(
        loans__service="from ..reservations import service\nfrom .models import Loan\n",
        reservations__service="from ..loans.queries import has_active_loan\n",
        loans__queries="from .models import Loan\n",
        loans__models="",
    )
    assert import_cycles(trees) == []
    assert domain_cycles(trees, before) == [["loans", "reservations"]]
    # Documents are open: reading the other domain's models makes no edge.
    trees["reservations.service"] = ast.parse("from ..loans.models import Loan\n")
    assert domain_cycles(trees, before) == []


def test_only_services_reach_the_database() -> None:
    trees = {relative(p): ast.parse(p.read_text()) for p in sorted(SRC.rglob("*.py"))}
    documents = document_classes(trees)
    assert {"Book", "Loan", "Reservation", "User", "Notification"} <= documents
    offenders = {
        path: lines
        for path, tree in trees.items()
        if not _is_service(path) and (lines := database_access(tree, documents))
    }
    assert offenders == {}


def test_a_router_querying_the_database_fails() -> None:
    documents = {"Loan"}
    for source in (
        "async def f():\n    return await Loan.find({}).to_list()\n",
        "async def f():\n    return await Loan.get_pymongo_collection().find_one({})\n",
        "async def f(loan):\n    await loan.insert()\n",
        "def f(database):\n    return database['loans']\n",
    ):
        assert database_access(ast.parse(source), documents) != [], source
    assert database_access(ast.parse("x = {}.get('a')\n"), documents) == []
    assert not _is_service("loans/router.py")
    assert _is_service("loans/service.py")


def test_the_named_exceptions_exist() -> None:
    for path in (*DATABASE_EXCEPTIONS, *CLOCK_EXCEPTIONS, *COUNTER_OWNERS):
        assert (SRC / path).is_file(), path


def test_only_copies_write_the_counters() -> None:
    offenders = {
        relative(p): lines
        for p in sorted(SRC.rglob("*.py"))
        if relative(p) not in COUNTER_OWNERS and (lines := counter_writes(ast.parse(p.read_text())))
    }
    assert offenders == {}


def test_a_counter_write_outside_copies_fails() -> None:
    source = (
        "async def borrow(books, book_id):\n"
        "    await books.update_one({'_id': book_id}, {'$inc': {'available_copies': -1}})\n"
    )
    assert counter_writes(ast.parse(source)) == [2]
    assert counter_writes(ast.parse("q = {'available_copies': {'$gt': 0}}\n")) == []


def test_time_comes_from_the_clock() -> None:
    offenders = {
        relative(p): lines
        for p in sorted(SRC.rglob("*.py"))
        if relative(p) not in CLOCK_EXCEPTIONS
        and (lines := wall_clock_reads(ast.parse(p.read_text())))
    }
    assert offenders == {}


def test_reading_the_wall_clock_fails() -> None:
    for source in (
        "from datetime import datetime, UTC\nt = datetime.now(UTC)\n",
        "import datetime\nt = datetime.datetime.utcnow()\n",
        "import time\nt = time.time()\n",
        "from time import time\n",
        "from datetime import date\nd = date.today()\n",
    ):
        assert wall_clock_reads(ast.parse(source)) != [], source
    assert wall_clock_reads(ast.parse("import time\nt = time.monotonic()\n")) == []


def long_files(paths: Iterable[Path]) -> dict[str, int]:
    return {p.name: n for p in paths if (n := len(p.read_text().splitlines())) > MAX_LINES}


def test_no_file_is_too_long() -> None:
    assert long_files(SRC.rglob("*.py")) == {}


def test_a_long_file_fails(tmp_path: Path) -> None:
    (tmp_path / "long.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (tmp_path / "short.py").write_text("x = 1\n" * MAX_LINES)
    assert long_files(tmp_path.glob("*.py")) == {"long.py": MAX_LINES + 1}


def utils_modules(root: Path) -> list[Path]:
    return sorted(root.rglob("utils.py"))


def test_no_utils_module() -> None:
    assert utils_modules(SRC) == []


def test_a_utils_module_fails(tmp_path: Path) -> None:
    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "utils.py").write_text("")
    assert utils_modules(tmp_path) == [tmp_path / "books" / "utils.py"]


def _third_party(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_routers_do_not_touch_the_database() -> None:
    routers = sorted(SRC.glob("*/router.py"))
    assert routers, "no routers found"
    offenders = {
        relative(r): sorted(_third_party(ast.parse(r.read_text())) & {"beanie", "pymongo", "bson"})
        for r in routers
    }
    assert {k: v for k, v in offenders.items() if v} == {}

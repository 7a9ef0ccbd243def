"""The layering rules of DEVELOPERS.md, checked on the source."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "library_api"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_routers_do_not_touch_the_database() -> None:
    routers = sorted(SRC.glob("*/router.py"))
    assert routers, "no routers found"
    offenders = {
        str(r.relative_to(SRC)): sorted(_imports(r) & {"beanie", "pymongo", "bson", "motor"})
        for r in routers
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_utils_module() -> None:
    assert not list(SRC.rglob("utils.py"))


def test_no_file_is_too_long() -> None:
    long = {
        str(p.relative_to(SRC)): n
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert long == {}

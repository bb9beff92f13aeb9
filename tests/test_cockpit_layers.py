"""One engine, two faces: the cockpit's service modules (cockpit/*.py) never import the TUI's libraries, so
the headless CLI runs without them and the TUI holds no logic the CLI lacks (README: Architecture)."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICES = sorted(p for p in (ROOT / "cockpit").glob("*.py"))
UI_LIBRARIES = ("textual", "rich", "textual_plotext")


def imported_modules(path: Path) -> set[str]:
    """Every module an `import` or `from ... import` names anywhere in the file (also inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_cockpit_service_module_imports_textual_or_rich():
    offenders = [f"{path.name}: {name}" for path in SERVICES for name in sorted(imported_modules(path))
                 if name.split(".")[0] in UI_LIBRARIES
                 # only the entry point may start the TUI face (lazily, when no command is given)
                 or (name.startswith("cockpit.tui") and path.name != "cli.py")]
    assert SERVICES and not offenders


def test_tui_screens_never_import_google_cloud():
    offenders = [f"{path.relative_to(ROOT)}: {name}" for path in (ROOT / "cockpit/tui").rglob("*.py")
                 for name in sorted(imported_modules(path)) if name.startswith(("google", "grpc"))]
    assert not offenders


def test_services_load_with_textual_and_rich_unavailable():
    blocker = ("import sys, importlib.abc\n"
               "class Block(importlib.abc.MetaPathFinder):\n"
               "    def find_spec(self, name, path, target=None):\n"
               f"        if name.split('.')[0] in {UI_LIBRARIES!r}:\n"
               "            raise ImportError('blocked for this test: ' + name)\n"
               "sys.meta_path.insert(0, Block())\n")
    modules = ", ".join(f"cockpit.{p.stem}" for p in SERVICES if p.stem not in ("__init__", "__main__"))
    proc = subprocess.run([sys.executable, "-c", blocker + f"import {modules}\nprint('ok')"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"

"""core stands alone: it runs where only torch and torchvision are installed (the training container)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BLOCKER = """
import sys, importlib.abc
BLOCKED = ("cockpit", "textual", "google.cloud.aiplatform", "google.cloud.logging", "google.cloud.storage",
           "tomlkit", "grpc")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.startswith(BLOCKED):
            raise ImportError("blocked for this test: " + name)
sys.meta_path.insert(0, Block())
"""


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + code], capture_output=True, text=True, cwd=ROOT)


def test_core_modules_import_with_cockpit_packages_unavailable():
    proc = run("import core.train, core.evaluate, core.predict, core.synth, core.splits, core.storage\n"
               "bad = [m for m in sys.modules if m.startswith(BLOCKED)]\n"
               "assert not bad, bad\nprint('ok')")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_trainer_help_runs_without_cockpit_packages():
    proc = run("from core.train import main\nsys.argv = ['core.train', '--help']\nmain()")
    assert "--preset" in proc.stdout


def test_no_core_file_imports_the_cockpit_side():
    offenders = []
    for path in (ROOT / "core").rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import ", "from ")) and any(
                    f" {m}" in stripped for m in ("cockpit", "textual", "google.cloud.aiplatform",
                                                  "google.cloud.logging")):
                offenders.append(f"{path.relative_to(ROOT)}: {stripped}")
    assert not offenders

"""The shared core must load without Django or bcc (collectors import it)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_core_imports_neither_django_nor_bcc():
    modules = sorted(p.stem for p in (ROOT / "webprof" / "core").glob("*.py")
                     if p.stem != "__init__")
    assert {"protocol", "flame", "live", "timeline", "diff", "formats"} <= set(modules)
    code = (
        "import sys, " + ", ".join(f"webprof.core.{m}" for m in modules) + ";"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('django', 'bcc', 'channels')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr

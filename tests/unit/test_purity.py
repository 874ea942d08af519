"""The shared core must load without Django or bcc (collectors import it)."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit


def test_core_imports_neither_django_nor_bcc():
    code = (
        "import sys, webprof.core.protocol, webprof.core.flame, webprof.core.live;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('django', 'bcc', 'channels')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr

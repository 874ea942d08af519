"""The shared core must load without Django or bcc (collectors import it)."""

import json
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


def _loaded_after(code: str) -> list[str]:
    """Top-level packages loaded by ``code`` in a fresh interpreter."""
    probe = code + ("\nimport sys, json\n"
                    "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_server_loads_no_bcc():
    """The ASGI application, its URL configuration and every server module
    load without bcc: the unprivileged side never touches the kernel."""
    server = [m for m in _modules("webprof") if ".migrations." not in m
              and not m.startswith("webprof.core.")]
    loaded = _loaded_after(
        "import webprof.asgi\n"
        "from django.urls import get_resolver; get_resolver().url_patterns\n"
        + "".join(f"import {m}\n" for m in server))
    assert "django" in loaded and "channels" in loaded  # the probe did load the server
    assert "bcc" not in loaded and "collectors" not in loaded


def test_the_collectors_load_no_django():
    """Every collector module loads without Django or Channels."""
    collectors = _modules("collectors")
    assert {"collectors.runner", "collectors.cpu", "collectors.offcpu"} <= set(collectors)
    loaded = _loaded_after("".join(f"import {m}\n" for m in collectors))
    assert "collectors" in loaded
    assert not {"django", "channels", "daphne"} & set(loaded), loaded


def _modules(package: str) -> list[str]:
    base = ROOT / package
    return sorted(
        ".".join((package, *p.relative_to(base).with_suffix("").parts)).removesuffix(".__init__")
        for p in base.rglob("*.py"))

"""The data directory holds the secret key, the collector token and the
database: it is created private, and made private again at start-up when it
was loosened.  Settings are loaded in a fresh interpreter, as a server starts."""

import os
import stat
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

FILES = ("webprof.sqlite3", "secret-key", "collector-token")


def start(data_dir) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "WEBPROF_SECRET_KEY", "WEBPROF_COLLECTOR_TOKEN")}
    env.update(WEBPROF_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="webprof.settings")
    code = "import os; os.umask(0o022); import django; django.setup()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_data_directory_and_files_are_private(tmp_path):
    data = tmp_path / "new" / "data"
    start(data)
    assert mode(data) == 0o700
    for name in FILES:
        assert mode(data / name) == 0o600, name


def test_loose_existing_directory_and_files_are_made_private(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    for name in FILES:
        (data / name).write_text("x\n")
        (data / name).chmod(0o644)
    start(data)
    assert mode(data) == 0o700
    for name in FILES:
        assert mode(data / name) == 0o600, name

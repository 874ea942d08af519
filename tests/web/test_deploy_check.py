"""`manage.py check --deploy` with the production environment README documents.

Every warning left must be one README lists, with its reason; the settings
that follow WEBPROF_BEHIND_TLS are checked in a fresh interpreter each, since
settings are read once at import.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.web

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()

# README, "Behind TLS": the environment of a server behind a reverse proxy.
PRODUCTION = {
    "WEBPROF_ALLOWED_HOSTS": "prof.example.com",
    "WEBPROF_BEHIND_TLS": "1",
    "WEBPROF_TRUST_X_FORWARDED_PROTO": "1",
}
# README lists each with the reason it is acceptable.
ACCEPTED_WARNINGS = {"security.W005", "security.W021"}


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("WEBPROF_", "SECURE_")) and k != "DATABASE_URL"}
    clean.update(WEBPROF_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="webprof.settings",
                 **env)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=clean, capture_output=True,
                          text=True, timeout=120)


def setting(name: str, tmp_path: Path, **env: str) -> str:
    code = f"import django; django.setup(); from django.conf import settings; " \
           f"print(repr(getattr(settings, {name!r}, None)))"
    out = run(["-c", code], tmp_path, **env)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_readme_documents_the_production_environment():
    for name, value in PRODUCTION.items():
        assert f"{name}={value}" in README, f"README does not show {name}={value}"
    for warning in ACCEPTED_WARNINGS:
        assert f"`{warning}`" in README, f"README does not explain {warning}"


def test_check_deploy_warns_only_about_what_readme_explains(tmp_path):
    out = run(["manage.py", "check", "--deploy"], tmp_path, **PRODUCTION)
    found = set(re.findall(r"\((security\.[A-Z]\d+|[a-z_.]+\.[EW]\d+)\)", out.stdout + out.stderr))
    assert found == ACCEPTED_WARNINGS, out.stdout + out.stderr
    assert "ERRORS" not in out.stderr + out.stdout


def test_behind_tls_secures_cookies_redirect_and_hsts(tmp_path):
    for name, value in [("SESSION_COOKIE_SECURE", "True"), ("CSRF_COOKIE_SECURE", "True"),
                        ("SECURE_SSL_REDIRECT", "True"), ("SECURE_HSTS_SECONDS", "86400"),
                        ("SECURE_HSTS_INCLUDE_SUBDOMAINS", "False"),
                        ("SECURE_PROXY_SSL_HEADER", "('HTTP_X_FORWARDED_PROTO', 'https')"),
                        ("DEBUG", "False")]:
        assert setting(name, tmp_path, **PRODUCTION) == value, name


def test_the_proxy_header_is_trusted_only_when_told(tmp_path):
    env = dict(WEBPROF_BEHIND_TLS="1", WEBPROF_SSL_REDIRECT="0")
    assert setting("SECURE_PROXY_SSL_HEADER", tmp_path, **env) == "None"
    assert setting("SECURE_SSL_REDIRECT", tmp_path, **env) == "False"
    assert setting("SESSION_COOKIE_SECURE", tmp_path, **env) == "True"


def test_plain_http_by_default(tmp_path):
    for name in ("SESSION_COOKIE_SECURE", "SECURE_SSL_REDIRECT"):
        assert setting(name, tmp_path) == "False", name
    assert setting("SECURE_HSTS_SECONDS", tmp_path) == "0"


def test_trusting_the_proxy_header_without_tls_stops_at_start(tmp_path):
    out = run(["manage.py", "check"], tmp_path, WEBPROF_TRUST_X_FORWARDED_PROTO="1")
    assert out.returncode != 0
    assert "WEBPROF_TRUST_X_FORWARDED_PROTO=1 needs WEBPROF_BEHIND_TLS=1" in out.stderr

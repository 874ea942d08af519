"""The collector's token comes from the environment or a private file, not argv."""

import os

import pytest

from collectors.runner import collector_token
from collectors.tokenfile import TokenFileError, read_token_file
from webprof.cli import build_parser

pytestmark = pytest.mark.unit


def token_file(tmp_path, mode: int, text: str = "s3cret-token\n"):
    path = tmp_path / "token"
    path.write_text(text)
    path.chmod(mode)
    return path


def collect_args(*extra: str):
    return build_parser().parse_args(["collect", "--server", "ws://127.0.0.1:1", *extra])


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_a_private_file_is_read(tmp_path, mode, monkeypatch):
    monkeypatch.delenv("WEBPROF_TOKEN", raising=False)
    path = token_file(tmp_path, mode)
    assert read_token_file(str(path)) == "s3cret-token"
    assert collector_token(collect_args("--token-file", str(path))) == "s3cret-token"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o620, 0o602])
def test_a_file_open_to_group_or_others_is_refused(tmp_path, mode):
    path = token_file(tmp_path, mode)
    with pytest.raises(TokenFileError, match=f"mode {mode:04o}.*chmod 600"):
        read_token_file(str(path))


def test_a_file_of_another_user_is_refused(tmp_path, monkeypatch):
    path = token_file(tmp_path, 0o600)
    real = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: real + 1)
    with pytest.raises(TokenFileError, match=f"owned by uid {real}, not by the user"):
        read_token_file(str(path))


def test_unusable_files_say_why(tmp_path):
    with pytest.raises(TokenFileError, match="cannot open"):
        read_token_file(str(tmp_path / "missing"))
    tmp_path.chmod(0o700)
    with pytest.raises(TokenFileError, match="not a regular file"):
        read_token_file(str(tmp_path))
    for text in ("", "\n", "two words\n"):
        with pytest.raises(TokenFileError, match="token alone"):
            read_token_file(str(token_file(tmp_path, 0o600, text)))


def test_the_environment_and_token_still_work(monkeypatch):
    monkeypatch.setenv("WEBPROF_TOKEN", "from-env")
    assert collector_token(collect_args()) == "from-env"
    assert collector_token(collect_args("--token", "from-argv")) == "from-argv"
    monkeypatch.delenv("WEBPROF_TOKEN")
    with pytest.raises(ValueError, match="WEBPROF_TOKEN or pass --token-file"):
        collector_token(collect_args())


def test_token_and_token_file_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as exc:
        collect_args("--token", "t", "--token-file", "/nonexistent")
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_help_warns_that_token_in_argv_is_visible():
    text = " ".join(build_parser()._subparsers._group_actions[0].choices["collect"]
                    .format_help().split())
    assert "--token-file PATH" in text and "mode 0600" in text
    assert "other local users can read it in the process list" in text

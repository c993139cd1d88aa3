"""Operations review: settings that would only fail (or misbehave) once gunicorn or the
delivery process is running are refused by `serve` at once, with the variable named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from receiver.settings import Settings
from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("RECEIVER_TIMEZONE", "Mars/Olympus"),
        ("RECEIVER_TIMEZONE", "../etc/passwd"),
        ("RECEIVER_LANGUAGE", "fr"),
        ("RECEIVER_WORKERS", "0"),
        ("RECEIVER_WORKERS", "-2"),
        ("RECEIVER_MAX_BODY_BYTES", "0"),
        ("RECEIVER_MAX_MESSAGE_BYTES", "-1"),
        ("RECEIVER_RECIPIENTS_PER_MINUTE", "0"),
        ("RECEIVER_USER_DAILY_LIMIT", "-5"),
        ("RECEIVER_SEND_RATE", "inf"),
        ("RECEIVER_SEND_RATE", "nan"),
        ("RECEIVER_DIRECTORY_QPS", "nan"),
        ("RECEIVER_HTTP_TIMEOUT", "nan"),
        ("RECEIVER_GIVE_UP_AFTER", "infh"),
        ("RECEIVER_RETENTION", "inf"),
    ],
)
def test_a_setting_that_cannot_work_is_refused_by_name(name: str, raw: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: raw})


def test_serve_workers_flag_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="workers"):
        Settings.from_env({}, workers=0)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"RECEIVER_TIMEZONE": "Mars/Olympus"}, "RECEIVER_TIMEZONE"),
        ({"RECEIVER_SEND_RATE": "inf"}, "RECEIVER_SEND_RATE"),
        ({"RECEIVER_WORKERS": "0"}, "RECEIVER_WORKERS"),
    ],
)
def test_serve_refuses_a_bad_setting_before_starting(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    full = {**os.environ, **env, "RECEIVER_DATA_DIR": str(tmp_path / "data")}
    full.pop("PROMETHEUS_MULTIPROC_DIR", None)
    try:
        out = subprocess.run(
            [sys.executable, "-m", "receiver", "serve", "--listen", "127.0.0.1:1"],
            env=full, cwd=ROOT, capture_output=True, text=True, timeout=15,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve kept running with {env}")
    assert out.returncode == 1, out.stderr
    assert out.stderr.startswith(f"Error: {expected}"), out.stderr
    assert "Traceback" not in out.stderr


def test_send_test_names_a_bad_setting_without_a_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "RECEIVER_HTTP_TIMEOUT": "soon", "RECEIVER_DATA_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "receiver", "send-test", "--to", "u1"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert "RECEIVER_HTTP_TIMEOUT" in out.stderr
    assert "Traceback" not in out.stderr


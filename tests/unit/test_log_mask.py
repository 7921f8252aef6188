"""One mask for phone, ID-card and bank-card numbers (store/masking.py), installed in the
gateway, the action server and Rasa: each process is started as it runs in production and
writes a log line with personal data in it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from store.masking import mask_text

ROOT = Path(__file__).resolve().parents[2]
RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"
MOBILE, ID_CARD, BANK_CARD = "13812345678", "11010119900307123X", "6222021234567890123"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("我的电话13812345678，尽快联系", "我的电话138****5678，尽快联系"),
        ("+86 138 1234 5678", "138****5678"),
        ("手机：１３９１２３４５６７８", "手机：139****5678"),
        ("身份证11010119900307123X", "身份证110101********123X"),
        ("身份证号110101199003071234。", "身份证号110101********1234。"),
        ("工资卡6222021234567890123没到账", "工资卡6222***********0123没到账"),
        ("卡号 6222 0212 3456 7890", "卡号 6222********7890"),
        ("物业电话0755-86001234", "物业电话0755-****1234"),
        ("（010）12345678", "（010）****5678"),
    ],
)
def test_numbers_in_free_text_are_masked(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "工单号12345-20261121-7KQ4M9X2A，手机后4位5678",
        "2026-11-26 09:05 路灯坏了3天，大概200米",
        "幸福路88号3栋1203室",
    ],
)
def test_other_numbers_stay(text: str) -> None:
    assert mask_text(text) == text


def _run(python: Path | str, code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [str(python), "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


LOG_LINES = f"""
import logging
log = logging.getLogger("probe")
log.warning("citizen wrote %s", "电话{MOBILE}")
log.warning("id {ID_CARD}")
try:
    raise ValueError("card {BANK_CARD}")
except ValueError:
    log.exception("failed")
"""


def _assert_masked(output: str) -> None:
    assert "138****5678" in output and "failed" in output
    for clear in (MOBILE, ID_CARD, BANK_CARD):
        assert clear not in output


def test_gateway_logs_are_masked() -> None:
    code = "from bot.logs import configure_logging\nconfigure_logging()" + LOG_LINES
    _assert_masked(_run(sys.executable, code))


def test_action_server_logs_are_masked() -> None:
    # `python -m rasa_sdk --actions actions` imports the package, then configures its handlers.
    code = (
        "import actions\n"
        "from rasa_sdk.utils import configure_colored_logging\n"
        "configure_colored_logging('INFO')" + LOG_LINES
    )
    _assert_masked(_run(sys.executable, code))


@pytest.mark.skipif(not RASA_PYTHON.exists(), reason="Rasa's virtualenv is not installed")
def test_rasa_logs_are_masked_through_its_logging_config_file() -> None:
    # What `rasa run --logging-config-file deploy/rasa-logging.yml` does at start-up, in order:
    # the config file, coloredlogs on the root logger, then structlog (JSON through logging).
    code = (
        "from rasa.utils.common import configure_logging_and_warnings\n"
        "from rasa.utils.io import configure_colored_logging\n"
        "from rasa.utils.log_utils import configure_structlog\n"
        "configure_logging_and_warnings(None, 'deploy/rasa-logging.yml')\n"
        "configure_colored_logging('INFO')\n"
        "configure_structlog(None)\n"
        "import structlog\n"
        f"structlog.get_logger().info('processor.message', text='call me {MOBILE}')\n" + LOG_LINES
    )
    out = _run(RASA_PYTHON, code)
    _assert_masked(out)
    assert "processor.message" in out

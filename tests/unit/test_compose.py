"""docker-compose.yml stays valid and describes the production-like topology."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"postgres", "redis", "rasa", "actions", "gateway"}


@pytest.fixture(scope="module")
def compose() -> dict:
    if shutil.which("docker-compose") is None:
        pytest.fail(
            "docker-compose is not installed (make test installs it via scripts/services.sh)"
        )
    result = subprocess.run(
        ["docker-compose", "config"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_config_validates_offline() -> None:
    result = subprocess.run(
        ["docker-compose", "config", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_every_service_has_a_health_check(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no health check"


def test_only_the_gateway_is_published_and_apps_share_the_same_settings(compose: dict) -> None:
    services = compose["services"]
    published = {name for name, s in services.items() if s.get("ports")}
    assert published == {"gateway"}
    for name in ("actions", "gateway"):
        env = services[name]["environment"]
        for key in ("DATABASE_URL", "REDIS_URL", "RASA_URL", "ACTION_SERVER_URL", "DATA_KEY"):
            assert key in env, f"{name} lacks {key}"
    assert services["gateway"]["depends_on"]["rasa"]["condition"] == "service_healthy"

"""examples/replicas/: two replicas, PostgreSQL, a load balancer and an Alertmanager HA pair.

Docker is not run here; what can be checked without it is: every mounted file exists,
both replicas get the same settings, files and secrets (what a replica needs), they
share one database, the load balancer spreads over exactly them, Alertmanager posts to
the load balancer, and amtool takes the config.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT, require_binary

HERE = ROOT / "examples" / "replicas"
AMTOOL = "/usr/bin/amtool"


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((HERE / "docker-compose.yml").read_text())
    return doc


def test_every_mounted_file_and_secret_exists() -> None:
    doc = compose()
    for name, service in doc["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (HERE / source).is_file(), f"{name} mounts missing {source}"
    for secret in doc["secrets"].values():
        assert (HERE / secret["file"]).is_file()
    build = doc["services"]["receiver-1"]["build"]
    assert (HERE / build["context"] / build["dockerfile"]).is_file()


def test_two_replicas_alike_on_one_database() -> None:
    services = compose()["services"]
    replicas = {k: v for k, v in services.items() if k.startswith("receiver-")}
    assert len(replicas) == 2
    one, two = replicas.values()
    for key in ("image", "entrypoint", "command", "environment", "secrets", "volumes"):
        assert one[key] == two[key], key  # the same settings, routing.yaml and secrets
    entry = " ".join(one["entrypoint"])
    assert 'RECEIVER_DATABASE_URL="postgresql://receiver:' in entry
    assert "@postgres:5432/receiver" in entry and "postgres" in services
    assert "/run/secrets/webhook_token" in entry and "/run/secrets/db_password" in entry
    routing = one["environment"]["RECEIVER_ROUTING"]
    assert f"../routing.yaml:{routing}:ro" in one["volumes"]
    assert int(one["stop_grace_period"].rstrip("s")) > 20  # gunicorn's graceful_timeout
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"].endswith("db_password")


def test_the_load_balancer_spreads_over_the_replicas() -> None:
    services = compose()["services"]
    conf = (HERE / "nginx.conf").read_text()
    upstream = re.findall(r"^\s*server (\S+):8080", conf, re.MULTILINE)
    assert sorted(upstream) == sorted(k for k in services if k.startswith("receiver-"))
    assert "proxy_pass http://receivers;" in conf and "listen 8080;" in conf


def test_the_alertmanager_pair_posts_to_the_load_balancer() -> None:
    services = compose()["services"]
    peers = {k: v for k, v in services.items() if k.startswith("alertmanager-")}
    assert len(peers) == 2
    for name, am in peers.items():
        other = next(p for p in peers if p != name)
        assert f"--cluster.peer={other}:9094" in am["command"]
    config = yaml.safe_load((HERE / "alertmanager.yml").read_text())
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            assert hook["url"].startswith("http://lb:8080/alertmanager")
    out = subprocess.run(
        [require_binary(AMTOOL), "check-config", "alertmanager.yml"],
        cwd=Path(HERE), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr

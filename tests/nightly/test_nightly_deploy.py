"""The shipped deploy files: parseable, non-overlapping schedules, and every option they pass
to `sweeps` is one the CLI has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from nightly_helpers import invoke

from sweeps.spec import load_spec, loads_spec

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
FILES = ["crontab", "systemd/sweeps-nightly.service", "k8s/nightly-cronjob.yaml"]


def test_cronjob_runs_the_shipped_spec_without_overlap() -> None:
    docs = list(yaml.safe_load_all((DEPLOY / "k8s/nightly-cronjob.yaml").read_text()))
    config, cron = (next(d for d in docs if d["kind"] == k) for k in ("ConfigMap", "CronJob"))
    assert loads_spec(config["data"]["nightly.yaml"]) == load_spec(DEPLOY / "nightly.yaml")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid" and cron["spec"]["schedule"] == "0 2 * * *"
    [container] = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    script = container["args"][0]
    assert "sweeps submit" in script and "--report-only" in script and "nightly-$(date" in script


def test_timer_is_persistent_daily() -> None:
    timer = (DEPLOY / "systemd/sweeps-nightly.timer").read_text()
    assert "OnCalendar=*-*-* 02:00:00 UTC" in timer and "Persistent=true" in timer


@pytest.mark.parametrize("path", FILES)
def test_deploy_commands_use_real_options(path: str) -> None:
    text = (DEPLOY / path).read_text().replace("\\\n", " ")
    calls = re.findall(r"sweeps (nightly|submit|schedule) ([^\n|&]*)", text)
    assert calls
    for command, args in calls:
        help_text = invoke(command, "--help").output
        for opt in re.findall(r"(--[a-z-]+)", args):
            assert opt in help_text, f"{path}: sweeps {command} has no {opt}"

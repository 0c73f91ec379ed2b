"""Real nightly runs end to end (inline workers): ensembles reused across nights unless
--retrain, identical nights compare equal, and the executed nightly notebook as HTML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nightly_helpers import invoke


@pytest.mark.slow
def test_second_night_reuses_models_and_retrain_does_not(night: Path) -> None:
    spec, res = str(night / "spec.yaml"), str(night / "res")
    first = json.loads((night / "res/reports/nightly-20261120.json").read_text())
    assert first["previous_run_id"] is None and len(first["models"]["trained"]) == 4

    second = invoke("nightly", spec, "--results", res, "--date", "2026-11-21", "--workers", "0")
    assert second.exit_code == 0, second.output
    rep = json.loads((night / "res/reports/nightly-20261121.json").read_text())
    assert rep["previous_run_id"] == "nightly-20261120" and rep["groups_compared"] == 12
    assert rep["models"] == {"reused": first["models"]["trained"], "trained": []}
    assert all(c["diff"] == 0 for c in rep["changes"])  # same code, same seeds, same numbers
    md = (night / "res/reports/nightly-20261121.md").read_text()
    assert "4 reused from earlier runs" in md and "html_error" not in rep
    assert "equals the previous night's exactly" in md
    html = (night / "res/reports/nightly-20261121.html").read_text()
    assert "Nightly trends" in html and "nightly-20261121" in html

    third = invoke(
        "nightly", spec, "--results", res, "--date", "2026-11-22", "--workers", "0", "--retrain",
        "--no-html",
    )  # fmt: skip
    assert third.exit_code == 0, third.output
    rep3 = json.loads((night / "res/reports/nightly-20261122.json").read_text())
    assert rep3["models"] == {"reused": [], "trained": first["models"]["trained"]}
    assert rep3["run"]["reuse_models"] is False
    assert all(c["diff"] == 0 for c in rep3["changes"])  # retraining is deterministic


def test_bad_inputs_exit_2(night: Path) -> None:
    spec, res = str(night / "spec.yaml"), str(night / "res")
    assert invoke("nightly", spec, "--results", res, "--date", "21/11/2026").exit_code == 2
    assert invoke("nightly", spec, "--results", res, "--threshold", "1.5").exit_code == 2
    assert invoke("schedule", spec, "--results", res, "--cron", "every night").exit_code == 2

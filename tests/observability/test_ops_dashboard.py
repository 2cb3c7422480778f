"""What the Grafana dashboard's panels show for a cluster: its queries are evaluated by
promtool on series as two engine nodes sharing one PostgreSQL store export them.

Figures read from the shared store (campaigns, recipients) and each node's copy of an ESME's
TPS contract are the same on every node: a panel that sums them over instances shows the
cluster's figure times the number of nodes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dispatch-dashboard.json"
NODES = ("node-a:8080", "node-b:8080")

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None,
                                reason="promtool not installed")


def _target(panel_title: str, legend: str) -> str:
    dash = json.loads(DASHBOARD.read_text())
    for panel in dash["panels"]:
        if panel["title"] == panel_title:
            for target in panel.get("targets", []):
                if target.get("legendFormat") == legend:
                    expr = str(target["expr"])
                    # Grafana's variables as "All" selects them, and a 1-minute rate window.
                    return (expr.replace("$instance", ".*").replace("$esme", ".*")
                            .replace("$__rate_interval", "1m"))
    raise AssertionError(f"no target {legend!r} in panel {panel_title!r}")


def _series(name: str, labels: dict[str, str], value: float) -> list[dict[str, str]]:
    out = []
    for node in NODES:
        all_labels = {"job": "dispatch", "instance": node, **labels}
        text = ",".join(f'{k}="{v}"' for k, v in sorted(all_labels.items()))
        out.append({"series": f"{name}{{{text}}}", "values": f"{value:g}x10"})
    return out


def _evaluate(tmp_path: Path, series: list[dict[str, str]], expr: str,
              expected: list[tuple[str, float]]) -> subprocess.CompletedProcess[str]:
    test = {"rule_files": [], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": series,
        "promql_expr_test": [{"expr": expr, "eval_time": "5m",
                              "exp_samples": [{"labels": labels, "value": value}
                                              for labels, value in expected]}]}]}
    path = tmp_path / "panel_test.yml"
    path.write_text(json.dumps(test))  # JSON is YAML
    return subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True,
                          text=True, timeout=60, check=False)


def test_tps_limit_is_the_contract_not_contract_times_nodes(tmp_path: Path) -> None:
    expr = _target("Submits per second vs TPS limit", "{{esme}} TPS limit")
    done = _evaluate(tmp_path, _series("dispatch_smpp_tps_limit", {"esme": "mts"}, 500), expr,
                     [('{esme="mts"}', 500)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_campaigns_by_status_counts_each_campaign_once(tmp_path: Path) -> None:
    expr = _target("Campaigns by status", "{{status}}")
    done = _evaluate(tmp_path, _series("dispatch_campaigns", {"status": "Sending"}, 3), expr,
                     [('{status="Sending"}', 3)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_recipients_by_stage_counts_each_recipient_once(tmp_path: Path) -> None:
    expr = _target("Recipients of active campaigns by stage", "{{stage}}")
    series = (_series("dispatch_campaign_recipients",
                      {"campaign_status": "Sending", "stage": "New"}, 1000)
              + _series("dispatch_campaign_recipients",
                        {"campaign_status": "Paused", "stage": "New"}, 200))
    done = _evaluate(tmp_path, series, expr, [('{stage="New"}', 1200)])
    assert done.returncode == 0, done.stdout + done.stderr

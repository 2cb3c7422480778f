"""deploy/: the Grafana dashboard and the alerting rules use only metric names a real engine
serves, and promtool accepts the scrape config, the rules and the rule unit tests."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from dispatch.observability.scrape import scrape_running_engine

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
_NAME = re.compile(r"\b((?:dispatch|process)_[a-z0-9_]+)\b")
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
             "gauge": ("",), "info": ("_info",), "summary": ("_count", "_sum", "")}


@pytest.fixture(scope="module")
def served_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every series name a real engine exposes after a short run (families with no sample
    yet, like the top-campaign gauges after the campaign ended, count by their TYPE line)."""
    body = trio.run(scrape_running_engine, tmp_path_factory.mktemp("scrape"), 100)
    names: set[str] = set()
    for family in text_string_to_metric_families(body.decode()):
        names.update(family.name + s for s in _SUFFIXES.get(family.type, ("",)))
        names.update(s.name for s in family.samples)
    return names


def _dashboard_exprs() -> list[str]:
    dash = json.loads((DEPLOY / "grafana" / "dispatch-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dash["templating"]["list"] if "definition" in v]
    return exprs


def test_dashboard_panels_use_served_metrics(served_names: set[str]) -> None:
    dash = json.loads((DEPLOY / "grafana" / "dispatch-dashboard.json").read_text())
    titles = {p["title"] for p in dash["panels"]}
    for wanted in ("Throughput", "Latency", "SMPP binds and windows", "Campaigns",
                   "Store and ingest", "Receipts per second by stat", "Window use",
                   "Errors per second"):
        assert wanted in titles
    assert any("histogram_quantile(0.99" in e for e in _dashboard_exprs())
    used = {n for e in _dashboard_exprs() for n in _NAME.findall(e)}
    assert used and not used - served_names, sorted(used - served_names)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


def test_alert_rules_use_served_metrics(served_names: set[str]) -> None:
    yaml = pytest.importorskip("yaml")
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    for wanted in ("DispatchBindsDown", "DispatchThrottlingStorm", "DispatchReceiptRateDrop",
                   "DispatchStoreCommitSlow"):
        assert wanted in alerts
    used = {n for r in alerts.values() for n in _NAME.findall(r["expr"])}
    assert used and not used - served_names, sorted(used - served_names)
    assert all(r["labels"]["severity"] in ("warning", "critical") for r in alerts.values())


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
@pytest.mark.parametrize("args", [("check", "config", "prometheus.yml"),
                                  ("check", "rules", "alerts.yml"),
                                  ("test", "rules", "alerts_test.yml")])
def test_promtool_accepts_the_deploy_files(args: tuple[str, ...]) -> None:
    done = subprocess.run(["promtool", *args], cwd=DEPLOY / "prometheus", capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr

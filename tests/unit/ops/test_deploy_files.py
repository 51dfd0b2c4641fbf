"""The Prometheus rules and the Grafana dashboard in deploy/ name only metrics jetbridge exports,
and the rules cover every built-in alarm."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client.metrics import Counter, Gauge, Histogram, MetricWrapperBase

from jetbridge.ops import metrics
from jetbridge.ops.alarms import DEFAULT_ALARMS

DEPLOY = Path(__file__).parents[3] / "deploy"
SCRAPED = {"jetbridge_dlq_depth", "jetbridge_alarm_firing"}  # read from the database


def exported() -> set[str]:
    names = set(SCRAPED)
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        name = value._name
        if isinstance(value, Counter):
            names.add(f"{name}_total")
        elif isinstance(value, Histogram):
            names.update(f"{name}_{suffix}" for suffix in ("bucket", "count", "sum"))
        elif isinstance(value, Gauge):
            names.add(name)
    return names


def named(text: str) -> set[str]:
    return set(re.findall(r"\bjetbridge_[a-z0-9_]+", text))


def test_alert_rules_use_exported_metrics_and_cover_every_alarm() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    used = set().union(*(named(expr) for expr in expressions))
    assert used <= exported(), used - exported()
    assert len(expressions) >= len(DEFAULT_ALARMS)


def test_dashboard_uses_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "jetbridge.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = set().union(*(named(expr) for expr in expressions))
    assert used <= exported(), used - exported()
    assert "jetbridge_dlq_depth" in used

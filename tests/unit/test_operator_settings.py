"""The operator's promised defaults, and reading them from FAIRPACK_* variables."""

from __future__ import annotations

from fairpack.operator import settings


def test_defaults_are_the_documented_ones() -> None:
    s = settings.OperatorSettings()
    assert (s.namespace, s.peering, s.peering_priority, s.liveness_port, s.metrics_port) == (
        "fairpack-system",
        "",
        0,
        8080,
        9090,
    )
    assert s.admission == settings.AdmissionSettings(
        cycle_interval_s=2.0, capacity_units=1000.0, default_job_seconds=600.0
    )
    assert s.webhook == settings.WebhookSettings(
        enabled=False, manage=True, addr="0.0.0.0", port=9443, host="", certfile="", keyfile=""
    )
    assert s.fallback == settings.FallbackSettings(
        enabled=True,
        dry_run=False,
        pending_delay_s=30.0,
        interval_s=10.0,
        plan_freshness_s=120.0,
        solver_window_s=5.0,
        max_evictions=4,
        keep_in_place=False,
        high_priority=1000,
        plan_history=20,
    )
    assert s.llmservice == settings.LLMServiceSettings(
        status_interval_s=5.0, metrics_url_template="http://{pod_ip}:{port}{path}", metrics_timeout_s=2.0
    )


def test_environment_overrides_nested_fields_with_their_types() -> None:
    s = settings.from_env(
        {
            "FAIRPACK_PEERING": "fairpack",
            "FAIRPACK_METRICS_PORT": "0",
            "FAIRPACK_ADMISSION_CYCLE_INTERVAL_S": "0.5",
            "FAIRPACK_LLMSERVICE_METRICS_URL_TEMPLATE": "http://127.0.0.1:1/{pod_name}",
            "FAIRPACK_FALLBACK_KEEP_IN_PLACE": "true",
        }
    )
    assert s.fallback.keep_in_place is True
    assert s.peering == "fairpack"
    assert s.metrics_port == 0
    assert s.admission.cycle_interval_s == 0.5
    assert s.llmservice.metrics_url_template == "http://127.0.0.1:1/{pod_name}"
    assert s.admission.capacity_units == 1000.0

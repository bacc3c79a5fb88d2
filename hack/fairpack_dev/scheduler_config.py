"""The KubeSchedulerConfiguration of the local ``fairpack-scheduler`` kube-scheduler process.

Extenders apply to every profile of a scheduler, which is why fairpack's profile runs in a
kube-scheduler process of its own (as the Helm chart deploys it), next to the default one.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field
from typing import Any

from fairpack.solver import gpumodels, labels


def managed_resources() -> list[str]:
    """``nvidia.com/gpu`` and every MIG profile resource of every known GPU model, sorted."""
    mig = {labels.MIG_RESOURCE_PREFIX + p.name for m in gpumodels.MODELS for p in m.mig_profiles}
    return [labels.GPU_RESOURCE, *sorted(mig)]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtenderConfig:
    """The ``extenders:`` entry of the fairpack-scheduler process."""

    url_prefix: str
    """Where the extender serves, e.g. ``http://127.0.0.1:18080`` (verbs are appended)."""
    ignorable: bool = True
    """Schedule anyway when the extender is unreachable or errs. True by default so the local
    cluster schedules before any extender runs; extender tests set False to see its decisions."""
    node_cache_capable: bool = True
    """The scheduler sends node names only; the extender keeps its own node cache."""
    weight: int = 5
    """Multiplier of the extender's prioritize scores (the chart's default)."""
    filter_verb: str = "filter"
    prioritize_verb: str = "prioritize"
    preempt_verb: str = "preempt"
    bind_verb: str = "bind"
    """Empty string: the verb is not configured (the scheduler does that step itself)."""
    https: bool = False
    """Whether to speak TLS to the extender (``url_prefix`` must then be https://)."""
    ca_file: pathlib.Path | None = None
    """With https: the CA that signed the extender's certificate (None: system roots)."""
    server_name: str = ""
    """With https: the name to check in the extender's certificate ('' = the URL's host)."""
    http_timeout_s: float = 5.0
    """Per-call timeout; the scheduler's default is 30 s, too long for tests to wait on."""
    managed_resources: tuple[str, ...] = field(default_factory=lambda: tuple(managed_resources()))
    """Extended resources the extender owns; pods asking none of them bypass it."""

    def entry(self) -> dict[str, Any]:
        """This entry as KubeSchedulerConfiguration (v1) YAML data."""
        entry: dict[str, Any] = {
            "urlPrefix": self.url_prefix,
            "weight": self.weight,
            "nodeCacheCapable": self.node_cache_capable,
            "ignorable": self.ignorable,
            "enableHTTPS": self.https,
            "httpTimeout": f"{self.http_timeout_s}s",
            "managedResources": [{"name": r, "ignoredByScheduler": False} for r in self.managed_resources],
        }
        verbs = {
            "filterVerb": self.filter_verb,
            "prioritizeVerb": self.prioritize_verb,
            "preemptVerb": self.preempt_verb,
            "bindVerb": self.bind_verb,
        }
        entry.update({k: v for k, v in verbs.items() if v})
        if self.https:
            tls: dict[str, Any] = {"insecure": False}
            if self.ca_file is not None:
                tls["caFile"] = str(self.ca_file)
            if self.server_name:
                tls["serverName"] = self.server_name
            entry["tlsConfig"] = tls
        return entry


def fairpack_scheduler(*, kubeconfig: pathlib.Path, extender: ExtenderConfig | None) -> dict[str, Any]:
    """The whole configuration: one profile, ``fairpack-scheduler``; leader election off (one
    replica, and no Lease to share with the default scheduler); the extender when given."""
    config: dict[str, Any] = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "leaderElection": {"leaderElect": False},
        "profiles": [{"schedulerName": labels.SCHEDULER_NAME}],
    }
    if extender is not None:
        config["extenders"] = [extender.entry()]
    return config


def default_scheduler(*, kubeconfig: pathlib.Path) -> dict[str, Any]:
    """The default kube-scheduler's configuration (profile ``default-scheduler``)."""
    return {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "leaderElection": {"leaderElect": False},
    }

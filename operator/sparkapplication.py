"""Kubeflow spark-operator SparkApplications in fairpack's UWFQ queue, next to SparkJobs.

Only when the SparkApplication CRD (sparkoperator.k8s.io/v1beta2, spark-operator v2 with
``spec.suspend``) is installed, and only applications labelled ``fairpack.io/queue: "true"``.
spark-operator runs them; fairpack decides when: an application is held by ``spec.suspend: true``
(users create it so; the operator suspends one that is not running yet) and released by setting it
false when UWFQ admits it. Its status belongs to spark-operator, so the queue's record lives in the
``fairpack.io/admission`` annotation, and ``status.applicationState.state`` says when it finished.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import kopf

from fairpack.operator import admission, k8s, resources
from fairpack.operator.resources import Resources
from fairpack.solver import labels

GROUP, VERSION, PLURAL = "sparkoperator.k8s.io", "v1beta2", "sparkapplications"
API_VERSION, KIND = f"{GROUP}/{VERSION}", "SparkApplication"
APP_NAME_LABEL = f"{GROUP}/app-name"
"""Label spark-operator puts on an application's driver and executor pods: the application's name."""

STATES = {
    "RUNNING": admission.RUNNING,
    "SUCCEEDING": admission.RUNNING,
    "FAILING": admission.RUNNING,
    "COMPLETED": admission.SUCCEEDED,
    "FAILED": admission.FAILED,
    "SUBMISSION_FAILED": admission.FAILED,
}
"""spark-operator's application states that move the queue's record; the others (new, SUBMITTED,
SUSPENDING, SUSPENDED, RESUMING, PENDING_RERUN, ...) do not."""
NOT_STARTED = ("", "SUSPENDING", "SUSPENDED")
"""States in which suspending still holds the application back."""

SPARK_UNITS = {"": "Mi", "k": "Ki", "m": "Mi", "g": "Gi", "t": "Ti", "p": "Pi"}
"""Spark's memory suffixes (binary; a bare number means MiB) as Kubernetes quantity suffixes."""


def memory_quantity(text: str) -> str:
    """A Spark memory size (``512m``, ``2g``, ``1024``) as a Kubernetes quantity; a quantity
    (``1Gi``) is returned as it is."""
    found = re.fullmatch(r"\s*(\d+)\s*([kmgtp]?)b?\s*", text, flags=re.IGNORECASE)
    if found is None:
        return text
    return found[1] + SPARK_UNITS[found[2].lower()]


def pod_requests(part: Mapping[str, Any]) -> Resources:
    """Requests of one driver or executor pod from its spec part, as spark-operator sets them:
    ``coreRequest`` (else ``cores``, default 1), ``memory`` (Spark's default 1g) and ``gpu``."""
    amounts = {
        "cpu": str(part.get("coreRequest") or part.get("cores") or 1),
        "memory": memory_quantity(str(part.get("memory") or "1g")),
    }
    gpu = part.get("gpu") or {}
    if gpu.get("name") == labels.GPU_RESOURCE:
        amounts[labels.GPU_RESOURCE] = str(gpu.get("quantity", 0))
    return resources.parse(amounts)


class Application(admission.Job):
    """An opted-in SparkApplication as the queue sees it."""

    pod_label = APP_NAME_LABEL
    runner = "application"
    has_conditions = False

    @property
    def tenant(self) -> str:
        return str(self.meta_labels.get(labels.TENANT_LABEL, ""))

    @property
    def user(self) -> str:
        return str(self.meta_labels.get(labels.USER_LABEL, ""))

    @property
    def meta_labels(self) -> Mapping[str, str]:
        found: Mapping[str, str] = self.body["metadata"].get("labels") or {}
        return found

    @property
    def status(self) -> Mapping[str, Any]:
        annotations = self.body["metadata"].get("annotations") or {}
        record: dict[str, Any] = json.loads(annotations.get(labels.ADMISSION_ANNOTATION) or "{}")
        return record

    @property
    def state(self) -> str:
        """spark-operator's application state ("" before it has seen the application)."""
        return str(((self.body.get("status") or {}).get("applicationState") or {}).get("state") or "")

    def write(self, update: Mapping[str, Any], *, problem: admission.Problem | None = None) -> None:
        record = json.dumps({**self.status, **update}, sort_keys=True)
        meta = {"annotations": {labels.ADMISSION_ANNOTATION: record}}
        k8s.patch(API_VERSION, KIND, self.name, {"metadata": meta}, namespace=self.namespace)
        self.body["metadata"].setdefault("annotations", {})[labels.ADMISSION_ANNOTATION] = record

    def held(self, pods: Sequence[Mapping[str, Any]]) -> bool:
        """Suspended; one that is not suspended yet is suspended now unless spark-operator has
        started it already (that one is left alone, outside the queue)."""
        if self.spec.get("suspend") is True:
            return True
        if self.state not in NOT_STARTED:
            return False
        self._suspend(True)
        return True

    def release(self, pods: Iterable[Mapping[str, Any]]) -> None:
        if self.spec.get("suspend") is True:
            self._suspend(False)

    def observe(self, pods: Iterable[Mapping[str, Any]]) -> str | None:
        return STATES.get(self.state)

    def requests(self) -> Resources:
        executor = self.spec.get("executor") or {}
        instances = int(executor.get("instances") or 1)
        return pod_requests(self.spec.get("driver") or {}) + pod_requests(executor).scaled(instances)

    def pod_sizes(self) -> list[tuple[str, Resources]]:
        executor = self.spec.get("executor") or {}
        sizes = [("spec.driver", pod_requests(self.spec.get("driver") or {}))]
        if int(executor.get("instances") or 1) > 0:
            sizes.append(("spec.executor", pod_requests(executor)))
        return sizes

    def _suspend(self, suspend: bool) -> None:
        k8s.patch(API_VERSION, KIND, self.name, {"spec": {"suspend": suspend}}, namespace=self.namespace)
        self.body["spec"]["suspend"] = suspend


def crd_installed() -> bool:
    """Whether spark-operator's SparkApplication CRD is installed."""
    return k8s.crd_exists(f"{PLURAL}.{GROUP}")


def list_jobs() -> list[admission.Job]:
    """The opted-in applications (an ``admission.Source``)."""
    selector = f"{labels.QUEUE_LABEL}=true"
    return [Application(b) for b in k8s.list_objects(API_VERSION, KIND, label_selector=selector)]


def register(registry: kopf.OperatorRegistry) -> None:
    """Kick the queue when an opted-in application appears or spark-operator changes its state."""

    @kopf.on.event(
        GROUP, VERSION, PLURAL, labels={labels.QUEUE_LABEL: "true"}, id="sparkapplication", registry=registry
    )
    def on_event(memo: kopf.Memo, **_: Any) -> None:
        if cycle := memo.get("cycle"):
            cycle.kick()

"""The UWFQ admission cycle for SparkJobs, in numbered steps as Kueue's scheduler has them.

1. snapshot   - list SparkJobs (and opted-in SparkApplications, ``sparkapplication``), Tenants,
                Nodes and Pods (the cluster is the only state: the queue is rebuilt from the
                jobs' records on every cycle, so a restarted operator continues exactly where
                the last one stopped);
2. follow     - move admitted jobs along what runs them (Running, Succeeded, Failed) and delete
                the executors of finished jobs;
3. submit     - give new jobs that are held back (pods gated, application suspended) their
                arrival time, size estimate and demand (written to their record);
4. decide     - rebuild the UWFQ queue from the facts and walk it in order, taking each job
                whose pods fit the free capacity and its tenant's quota, without ever delaying
                the first job that does not fit (``decide`` states the rule);
5. admit      - one by one: record the admission in the job's record first, then release it
                (lift its pods' gates, unsuspend it); a crash in between is repaired by step 5
                of the next cycle, which releases admitted jobs still held;
6. report     - queue positions and virtual finishes of waiting jobs, tenant status, metrics.

Who shares. UWFQ's flows are users, each inside its tenant (``flow``): a tenant's weight is split
equally among its users that have unfinished jobs (``shares``), so a tenant gets its weighted
share of the cluster and each of its active users an equal part of that share; inside a user,
jobs are laid end to end as UWFQ does. The split changes as users come and go, and the replay
applies to each moment the split of that moment, so a second user's arrival divides the first
one's share from then on, not its past service.

Conditions. A SparkJob's status carries ``Admitted`` (True once admitted, with when) and
``Degraded`` (True, with a reason naming the field to fix, while the job can never run as it
stands: unknown tenant, user not a member, larger than its tenant's quota, the pool or any node;
``sparkjob`` adds ``PodsRejected`` when the API refuses its pods). A degraded job is not queued and
is re-checked every cycle, so fixing the Tenant (or the cluster) lets it in without resubmitting.
"""

from __future__ import annotations

import datetime
import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import kopf

from fairpack.operator import conditions, k8s, kicks, metrics, resources, spark_pods, tenant
from fairpack.operator.conditions import Condition
from fairpack.operator.resources import Resources
from fairpack.operator.settings import AdmissionSettings
from fairpack.solver import labels
from fairpack.solver.fairqueue import estimator as estimator_mod
from fairpack.solver.fairqueue import uwfq
from fairpack.solver.fairqueue.policy import JobId, QueuedJob, UserName

logger = logging.getLogger(__name__)

API_VERSION, KIND = "fairpack.io/v1alpha1", "SparkJob"
QUEUED, ADMITTED, RUNNING, SUCCEEDED, FAILED = "Queued", "Admitted", "Running", "Succeeded", "Failed"
FINISHED = (SUCCEEDED, FAILED)
GONE = "Gone"
"""What ``Job.observe`` says when what ran the job has disappeared."""


def rfc3339(seconds: float) -> str:
    """UTC time with microseconds: the queue's facts need sub-second order."""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def seconds(stamp: str | None) -> float | None:
    if not stamp:
        return None
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class Job:
    """A SparkJob as the queue sees it. Other kinds the queue admits (``sparkapplication``)
    subclass it and override where they differ: where the record lives, how the job is held
    back and released, and what says it runs."""

    body: dict[str, Any]
    pod_label = spark_pods.JOB_LABEL
    """Label whose value names the job on its pods."""
    runner = "driver"
    """What runs the job, for messages."""
    has_conditions = True
    """Whether the record holds ``conditions`` (a SparkApplication's status is spark-operator's)."""

    @property
    def uid(self) -> JobId:
        return JobId(self.body["metadata"]["uid"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"]["namespace"])

    @property
    def spec(self) -> Mapping[str, Any]:
        spec: Mapping[str, Any] = self.body["spec"]
        return spec

    @property
    def tenant(self) -> str:
        return str(self.spec["tenant"])

    @property
    def user(self) -> str:
        return str(self.spec["user"])

    @property
    def status(self) -> Mapping[str, Any]:
        """The queue's record of the job (arrival, estimate, demand, admission, phase)."""
        return self.body.get("status") or {}

    def write(self, update: Mapping[str, Any], *, problem: Problem | None = None) -> None:
        """Merge ``update`` into the record, in the cluster and in this snapshot. An update that
        sets the phase also sets the conditions (``problem``: why the job can never run)."""
        update = dict(update)
        if self.has_conditions and "phase" in update:
            merged = {**self.status, **update}
            update["conditions"] = conditions.merge(
                self.status.get("conditions"), job_conditions(merged, problem), now=rfc3339(time.time())
            )
        k8s.patch(
            API_VERSION,
            KIND,
            self.name,
            {"status": dict(update)},
            namespace=self.namespace,
            subresource="status",
        )
        self.body.setdefault("status", {}).update(update)

    def held(self, pods: Sequence[Mapping[str, Any]]) -> bool:
        """Whether the job is held back until admitted: all its pods exist, gated (kopf's handler
        creates them; until then the job is not queued yet)."""
        return len(pods) >= self.pod_count()

    def release(self, pods: Iterable[Mapping[str, Any]]) -> None:
        """Let the admitted job run: lift its pods' gates (repeatable)."""
        lift_gates(self, pods, float(self.status.get("virtualFinish") or 0.0))

    def observe(self, pods: Iterable[Mapping[str, Any]]) -> str | None:
        """RUNNING, SUCCEEDED or FAILED as the driver pod's phase says, GONE without a driver,
        None while it is not running yet."""
        phase = driver_phase(pods)
        if phase is None:
            return GONE
        return phase if phase in (RUNNING, *FINISHED) else None

    @property
    def phase(self) -> str:
        return str(self.status.get("phase") or "")

    @property
    def flow(self) -> UserName:
        """Who the job's work is charged to in UWFQ: its user inside its tenant."""
        return flow(self.tenant, self.user)

    @property
    def template(self) -> str:
        """What the estimator learns sizes by: the user's application."""
        return f"{self.user}/{self.spec.get('mainClass') or self.spec['mainApplicationFile']}"

    def pod_count(self) -> int:
        """The driver and the executors."""
        return 1 + int(self.spec.get("executor", {}).get("instances", 2))

    def requests(self) -> Resources:
        """Driver plus all executors."""
        executor = self.spec.get("executor", {})
        per_executor = resources.parse(spark_pods.pod_requests(executor))
        driver = resources.parse(spark_pods.pod_requests(self.spec.get("driver", {})))
        return driver + per_executor.scaled(int(executor.get("instances", 2)))

    def pod_sizes(self) -> list[tuple[str, Resources]]:
        """Each kind of pod's request, with the spec field that sizes it."""
        executor = self.spec.get("executor", {})
        sizes = [("spec.driver", resources.parse(spark_pods.pod_requests(self.spec.get("driver", {}))))]
        if int(executor.get("instances", 2)) > 0:
            sizes.append(("spec.executor", resources.parse(spark_pods.pod_requests(executor))))
        return sizes

    def fact(self) -> uwfq.JobFact:
        """The persisted facts UWFQ is rebuilt from."""
        status = self.status
        demand = int(status["demand"])
        admitted = seconds(status.get("admittedAt"))
        finished = seconds(status.get("finishedAt"))
        actual = None
        if finished is not None and admitted is not None:
            actual = max(finished - (seconds(status.get("startedAt")) or admitted), 0.0) * demand
        return uwfq.JobFact(
            job=QueuedJob(
                id=self.uid,
                user=self.flow,
                arrival_s=float(seconds(status["submittedAt"]) or 0.0),
                work_s=float(status["estimatedSeconds"]) * demand,
                demand=demand,
                name=self.template,
            ),
            admitted_s=admitted,
            finished_s=finished,
            actual_work_s=actual,
        )


@dataclass
class Snapshot:
    """Step 1: everything a cycle decides on, listed once."""

    now: float
    jobs: list[Job]
    tenants: dict[str, tenant.Tenant]
    nodes: list[dict[str, Any]]
    pods: list[dict[str, Any]]

    pods_by_job: dict[tuple[str, str, str], list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        keys = {type(job).pod_label for job in self.jobs}
        for pod in self.pods:
            pod_labels = pod.get("metadata", {}).get("labels") or {}
            for key in keys & pod_labels.keys():
                self.pods_by_job.setdefault((pod["metadata"]["namespace"], key, pod_labels[key]), []).append(
                    pod
                )

    def job_pods(self, job: Job) -> list[dict[str, Any]]:
        return self.pods_by_job.get((job.namespace, job.pod_label, job.name), [])


Source = Callable[[], list[Job]]
"""Lists the jobs of one more kind the queue admits (``sparkapplication.list_jobs``)."""


def take_snapshot(now: float, sources: Sequence[Source] = ()) -> Snapshot:
    return Snapshot(
        now=now,
        jobs=[Job(b) for b in k8s.list_objects(API_VERSION, KIND)] + [j for s in sources for j in s()],
        tenants={t.name: t for t in map(tenant.from_object, k8s.list_objects(API_VERSION, "Tenant"))},
        nodes=k8s.list_objects("v1", "Node"),
        pods=k8s.list_objects("v1", "Pod"),
    )


def driver_phase(pods: Iterable[Mapping[str, Any]]) -> str | None:
    """The phase of the job's driver pod, None when it does not exist."""
    for pod in pods:
        if (pod["metadata"].get("labels") or {}).get(spark_pods.SPARK_ROLE) == spark_pods.DRIVER:
            return str((pod.get("status") or {}).get("phase") or "Pending")
    return None


def follow(snap: Snapshot) -> None:
    """Step 2: admitted jobs follow their driver; executors of finished jobs are deleted."""
    for job in snap.jobs:
        if job.phase not in (ADMITTED, RUNNING):
            continue
        pods = snap.job_pods(job)
        phase = job.observe(pods)
        update: dict[str, Any] = {}
        if phase == GONE:
            update = {
                "phase": FAILED,
                "finishedAt": rfc3339(snap.now),
                "message": f"{job.runner} was deleted",
            }
        elif phase == RUNNING and job.phase == ADMITTED:
            update = {"phase": RUNNING, "startedAt": rfc3339(snap.now), "message": f"{job.runner} running"}
        elif phase in FINISHED:
            update = {
                "phase": phase,
                "finishedAt": rfc3339(snap.now),
                "message": f"{job.runner} {phase.lower()}",
            }
            if not job.status.get("startedAt"):
                update["startedAt"] = rfc3339(snap.now)
        if not update:
            continue
        job.write(update)
        if update["phase"] in FINISHED:
            for pod in pods:
                labels_ = pod["metadata"].get("labels") or {}
                if labels_.get(spark_pods.SPARK_ROLE) == spark_pods.EXECUTOR and resources.holds_capacity(
                    pod
                ):
                    k8s.delete("v1", "Pod", pod["metadata"]["name"], job.namespace)


@dataclass(frozen=True)
class Problem:
    """Why a job can never run as it stands: the Degraded condition's reason and message (the
    message names the field and the fix)."""

    reason: str
    message: str


def job_conditions(status: Mapping[str, Any], problem: Problem | None) -> list[Condition]:
    """Admitted and Degraded for a job whose record is ``status``."""
    if status.get("admittedAt"):
        admitted = Condition("Admitted", True, "Admitted", f"admitted at {status['admittedAt']}")
    elif problem is not None:
        admitted = Condition("Admitted", False, "Inadmissible", problem.message)
    else:
        admitted = Condition("Admitted", False, "Queued", "waiting in the UWFQ queue")
    if problem is not None:
        degraded = Condition("Degraded", True, problem.reason, problem.message)
    else:
        degraded = Condition("Degraded", False, "AsExpected")
    return [admitted, degraded]


def admissibility(
    job: Job,
    tenants: Mapping[str, tenant.Tenant],
    total: Resources,
    nodes: Sequence[Resources] = (),
) -> Problem | None:
    """Why the job can never be queued as it stands (None when it can). ``total`` is the pool's
    capacity, ``nodes`` each pool node's allocatable (empty: not checked per node)."""
    found = tenants.get(job.tenant)
    if found is None:
        return Problem(
            "TenantNotFound",
            f"spec.tenant: tenant {job.tenant!r} does not exist; create the Tenant or resubmit under "
            "an existing one",
        )
    if not found.admits_user(job.user):
        return Problem(
            "UserNotInTenant",
            f"spec.user: user {job.user!r} is not a member of tenant {found.name!r}; add the user to the "
            f"Tenant's spec.users or resubmit under a tenant the user belongs to",
        )
    need = job.requests()
    if found.quota_gpus is not None and need.gpus > found.quota_gpus:
        return Problem(
            "ExceedsQuota",
            f"spec.executor: the job requests {need.gpus:g} GPUs, more than tenant {found.name!r} may use "
            f"(spec.quota.gpus {found.quota_gpus}); ask fewer executors or GPUs, or raise the quota",
        )
    if found.quota_cores is not None and need.cpu > found.quota_cores + 1e-9:
        return Problem(
            "ExceedsQuota",
            f"spec.executor: the job requests {need.cpu:g} cores, more than tenant {found.name!r} may use "
            f"(spec.quota.cores {found.quota_cores:g}); ask fewer executors or cores, or raise the quota",
        )
    if not need.fits_in(total):
        return Problem(
            "ExceedsCluster",
            "spec.executor: the job requests more than the whole cluster has "
            f"({need.cpu:g} cores, {need.gpus:g} GPUs against {total.cpu:g} cores, {total.gpus:g} GPUs); "
            "ask fewer or smaller executors",
        )
    for where, pod in job.pod_sizes():
        if nodes and not any(pod.fits_in(node) for node in nodes):
            return Problem(
                "ExceedsNode",
                f"{where}: one pod requests more than any node has ({pod.cpu:g} cores, "
                f"{pod.memory / 2**30:g} GiB, {pod.gpus:g} GPUs); ask a smaller pod",
            )
    return None


def flow(tenant_name: str, user: str) -> UserName:
    """The UWFQ flow of a user inside a tenant."""
    return UserName(f"{tenant_name}/{user}")


def shares(jobs: Iterable[Job], tenants: Mapping[str, tenant.Tenant]) -> uwfq.Tenants:
    """Who shares each tenant's weight: the flows of its jobs. The replay (``uwfq.rebuild``) splits
    the weight equally among the flows with queued or running jobs at each moment of the past, so
    a tenant's share does not depend on how many users it lists, and a user's past service keeps
    the split it had then. A job that never entered the queue (Degraded, e.g. its user is not a
    member) has no facts and so takes no part of it; a job whose tenant is gone keeps UWFQ's
    default weight."""
    return uwfq.Tenants(
        weights={name: found.weight for name, found in tenants.items()},
        members={job.flow: job.tenant for job in jobs if job.tenant in tenants},
    )


def rebuild(snap: Snapshot, settings: AdmissionSettings) -> tuple[uwfq.UwfqQueue, estimator_mod.Estimator]:
    """Step 4a: the queue from every submitted job's facts, and the estimator they taught."""
    estimator = estimator_mod.Estimator()
    facts = [job.fact() for job in snap.jobs if job.status.get("submittedAt")]
    latest = max((t for f in facts for t in (f.job.arrival_s, f.admitted_s, f.finished_s) if t), default=0.0)
    snap.now = max(snap.now, latest)
    queue = uwfq.rebuild(
        facts,
        capacity=settings.capacity_units,
        now=snap.now,
        tenants=shares(snap.jobs, snap.tenants),
        estimator=estimator,
    )
    return queue, estimator


def submit(
    snap: Snapshot,
    settings: AdmissionSettings,
    estimator: estimator_mod.Estimator,
    total: Resources,
    nodes: Sequence[Resources] = (),
) -> None:
    """Step 3: new jobs get their arrival, estimate and demand; those that can never run a
    Degraded condition saying why (and are re-checked next cycle)."""
    for job in snap.jobs:
        if job.status.get("submittedAt") or job.phase in FINISHED:
            continue
        if not job.held(snap.job_pods(job)):
            continue  # not (or no longer) held back: e.g. its pods are still being created
        problem = admissibility(job, snap.tenants, total, nodes)
        if problem is not None:
            if job.status.get("message") != problem.message:
                job.write({"phase": QUEUED, "message": problem.message}, problem=problem)
                logger.info("%s/%s cannot run: %s", job.namespace, job.name, problem.message)
            continue
        demand = resources.demand_units(job.requests(), total, units=settings.capacity_units)
        declared = float(job.spec.get("estimatedSeconds") or settings.default_job_seconds)
        # Learned history of the same user's application wins over the declaration.
        work = estimator.estimate(user=job.flow, name=job.template, declared_s=declared * demand)
        update = {
            "phase": QUEUED,
            "submittedAt": rfc3339(snap.now),
            "estimatedSeconds": work / demand,
            "demand": demand,
            "message": "waiting for admission",
        }
        job.write(update)


def tenant_usage(snap: Snapshot) -> dict[str, Resources]:
    """Requests of each tenant's pods that hold capacity."""
    usage: dict[str, Resources] = {}
    for pod in snap.pods:
        owner = (pod["metadata"].get("labels") or {}).get(labels.TENANT_LABEL)
        if owner and resources.holds_capacity(pod):
            usage[owner] = usage.get(owner, Resources()) + resources.pod_requests(pod)
    return usage


def outstanding(snap: Snapshot) -> Resources:
    """What admitted jobs will take beyond the pods they have so far: an unsuspended application
    holds its whole request before spark-operator has made its pods, which ``resources.used`` cannot
    see yet. (A SparkJob's pods all exist once it is admitted, so it has nothing outstanding.)"""
    total = Resources()
    for job in snap.jobs:
        if job.phase not in (ADMITTED, RUNNING):
            continue
        have = Resources()
        for pod in snap.job_pods(job):
            have = have + resources.pod_requests(pod)
        need = job.requests()
        total = total + Resources(
            max(need.cpu - have.cpu, 0.0),
            max(need.memory - have.memory, 0.0),
            max(need.gpus - have.gpus, 0.0),
        )
    return total


def within_quota(found: tenant.Tenant, usage: Resources) -> bool:
    if found.quota_gpus is not None and usage.gpus > found.quota_gpus:
        return False
    return not (found.quota_cores is not None and usage.cpu > found.quota_cores + 1e-9)


def decide(snap: Snapshot, queue: uwfq.UwfqQueue, free: Resources) -> list[Job]:
    """Step 4b: walk the queue in UWFQ order and take the jobs that fit, never delaying the head.

    The rule (a reservation for the head, as EASY backfilling keeps one):

    * a job blocked only by its own tenant's quota is skipped and reserves nothing (what holds it
      back is its tenant's running work, not anyone else's);
    * the *head* is the first job, in UWFQ order, that its quota allows but whose request does not
      fit in the free capacity. From the head on, its request is reserved: a later job is taken
      only if it fits in ``free - head`` in every dimension (cores, memory, GPUs), where a
      dimension in which the head needs more than is free leaves nothing to later jobs.

    So later jobs only take capacity the head would leave unused even once what it waits for has
    freed: admitting them never postpones the moment the head fits. Only the head is protected;
    the next blocked job is protected once it is the head. Capacity is counted over the pool, not
    per node, as everywhere in the queue; work outside the queue (LLMServices) that never ends can
    still hold the head back, and then later jobs wait too rather than overtake it forever.
    """
    by_uid = {job.uid: job for job in snap.jobs}
    usage = tenant_usage(snap)
    chosen = []
    head: Job | None = None
    for job_id in queue.waiting():
        job = by_uid[job_id]
        if job.phase != QUEUED:
            continue
        need = job.requests()
        owner = snap.tenants.get(job.tenant)
        after = usage.get(job.tenant, Resources()) + need
        if owner is None or not within_quota(owner, after):
            continue
        room = free if head is None else reserve(free, head.requests())
        if not need.fits_in(room):
            head = head or job
            continue
        free = free - need
        usage[job.tenant] = after
        chosen.append(job)
    return chosen


def reserve(free: Resources, held: Resources) -> Resources:
    """What is left of ``free`` once ``held`` is set aside, none where ``held`` needs more."""
    return Resources(
        max(free.cpu - held.cpu, 0.0), max(free.memory - held.memory, 0.0), max(free.gpus - held.gpus, 0.0)
    )


def lift_gates(job: Job, pods: Iterable[Mapping[str, Any]], virtual_finish: float) -> None:
    """Remove the admission gate from the job's pods and stamp their virtual finish."""
    for pod in pods:
        if not resources.is_gated(pod):
            continue
        gates = [g for g in pod["spec"]["schedulingGates"] if g.get("name") != labels.ADMISSION_GATE]
        k8s.patch(
            "v1",
            "Pod",
            pod["metadata"]["name"],
            {
                "metadata": {"annotations": {labels.VIRTUAL_FINISH_ANNOTATION: f"{virtual_finish:.6f}"}},
                "spec": {"schedulingGates": gates},
            },
            namespace=job.namespace,
        )


def admit(snap: Snapshot, queue: uwfq.UwfqQueue, chosen: Iterable[Job]) -> None:
    """Step 5: status first, then the gates; also re-lift gates a crash left behind."""
    for job in chosen:
        finish = queue.virtual_finish(job.uid)
        update = {
            "phase": ADMITTED,
            "admittedAt": rfc3339(snap.now),
            "virtualFinish": finish,
            "queuePosition": None,
            "message": "admitted",
        }
        job.write(update)
        queue.admit(job.uid, now=snap.now)
        submitted = seconds(job.status.get("submittedAt")) or snap.now
        metrics.ADMISSION_WAIT.labels(job.tenant).observe(max(snap.now - submitted, 0.0))
        logger.info("admitted %s/%s (virtual finish %.3f)", job.namespace, job.name, finish)
    for job in snap.jobs:
        if job.phase in (ADMITTED, RUNNING):
            job.release(snap.job_pods(job))


def report(snap: Snapshot, queue: uwfq.UwfqQueue) -> None:
    """Step 6: positions and virtual finishes of waiting jobs, tenant status, queue metrics."""
    by_uid = {job.uid: job for job in snap.jobs}
    waiting = [by_uid[j] for j in queue.waiting() if by_uid[j].phase == QUEUED]
    per_tenant: dict[str, list[int]] = {name: [0, 0] for name in snap.tenants}
    for position, job in enumerate(waiting):
        per_tenant.setdefault(job.tenant, [0, 0])[0] += 1
        finish = round(queue.virtual_finish(job.uid), 6)
        if job.status.get("queuePosition") != position or job.status.get("virtualFinish") != finish:
            job.write({"queuePosition": position, "virtualFinish": finish})
    for job in snap.jobs:
        if job.phase in (ADMITTED, RUNNING):
            per_tenant.setdefault(job.tenant, [0, 0])[1] += 1
    usage = tenant_usage(snap)
    for name, (queued, running) in per_tenant.items():
        metrics.QUEUE_LENGTH.labels(name).set(queued)
        if name not in snap.tenants:
            continue
        used = usage.get(name, Resources())
        metrics.TENANT_WEIGHT.labels(name).set(snap.tenants[name].weight)
        metrics.TENANT_GPUS.labels(name).set(used.gpus)
        k8s.patch(
            API_VERSION,
            "Tenant",
            name,
            {
                "status": {
                    "queuedJobs": queued,
                    "runningJobs": running,
                    "usage": {"gpus": int(used.gpus), "cores": round(used.cpu, 3)},
                }
            },
            subresource="status",
        )


def run_cycle(settings: AdmissionSettings, now: float, *, sources: Sequence[Source] = ()) -> None:
    """One pass of steps 1-6."""
    steps: list[tuple[str, float]] = []

    def mark(step: str, started: float) -> float:
        took = time.monotonic() - started
        metrics.CYCLE_SECONDS.labels(step).observe(took)
        steps.append((step, took))
        return time.monotonic()

    t = time.monotonic()
    snap = take_snapshot(now, sources)
    t = mark("snapshot", t)
    follow(snap)
    t = mark("follow", t)
    selector = resources.parse_selector(settings.pool)
    pool = resources.pool_nodes(snap.nodes, selector)
    total = resources.capacity(pool)
    # "Fits no node" is judged on every node of the pool, cordoned or NotReady ones too: a job
    # waiting for the one large node to come back from maintenance is queued, not Degraded.
    node_sizes = [
        resources.capacity([node])
        for node in snap.nodes
        if resources.matches(node["metadata"].get("labels"), selector)
    ]
    queue, estimator = rebuild(snap, settings)
    submit(snap, settings, estimator, total, node_sizes)
    queue, _ = rebuild(snap, settings)
    t = mark("submit", t)
    free = total - resources.used(snap.pods, nodes=pool, selector=selector) - outstanding(snap)
    chosen = decide(snap, queue, free)
    t = mark("decide", t)
    admit(snap, queue, chosen)
    t = mark("admit", t)
    report(snap, queue)
    mark("report", t)
    logger.debug("admission cycle: %s", ", ".join(f"{s} {d * 1000:.0f} ms" for s, d in steps))


def register(
    registry: kopf.OperatorRegistry, settings: AdmissionSettings, *, sources: Sequence[Source] = ()
) -> None:
    """Start the cycle with the operator; the Tenant timer and job and pod events kick it.
    ``sources`` list the jobs of the other kinds the queue admits besides SparkJobs."""

    @kopf.on.startup(registry=registry)
    async def start(memo: kopf.Memo, **_: Any) -> None:
        memo["cycle"] = kicks.KickedLoop(
            "admission", functools.partial(run_cycle, settings, sources=sources), active=memo.get("active")
        )

    @kopf.on.cleanup(registry=registry)
    async def stop(memo: kopf.Memo, **_: Any) -> None:
        await memo["cycle"].stop()

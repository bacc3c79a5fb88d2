"""What a person looks at: jobs by tenant, tenants' shares vs weights and their waits, GPU/MIG
occupancy per node and its fragmentation, and the CP-SAT fallback's plans with their outcomes.

One module shared by ``fairpack status`` and ``make demo``. ``collect`` reads a ``Snapshot`` of
plain dicts (as ``kubectl get -o json`` prints objects) from the API; every other function is pure
and builds rich renderables from a snapshot, so tests feed them hand-made objects. Fragmentation
is counted as the extender counts it (its cluster view and :mod:`fairpack.solver.stranding`), so
the terminal and the dashboard agree.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client import exceptions as client_exceptions
from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from fairpack.extender import verbs
from fairpack.extender import view as cv
from fairpack.solver import labels, stranding

Obj = dict[str, Any]
GROUP, VERSION = labels.DOMAIN, "v1alpha1"
PLANS_CONFIGMAP = "fairpack-fallback-plans"
"""The ConfigMap the operator's fallback records its plans in (``operator.fallback.PLANS_CONFIGMAP``;
a unit test keeps the two equal without the CLI importing the operator)."""
DEFAULT_NAMESPACE = "fairpack-system"
"""The operator's namespace, where that ConfigMap lives (``OperatorSettings.namespace``)."""
PLANS_SHOWN = 6

STATE_STYLE: Mapping[str, str] = {
    "Queued": "yellow",
    "Admitted": "cyan",
    "Running": "green",
    "Succeeded": "bright_black",
    "Failed": "red",
    "Ready": "green",
    "Progressing": "cyan",
    "Degraded": "red",
    "executed": "green",
    "dry_run": "cyan",
    "no_gain": "bright_black",
    "blocked": "red",
}


@dataclass(frozen=True)
class Snapshot:
    """The cluster objects the views read, listed at ``taken``."""

    tenants: list[Obj] = field(default_factory=list)
    sparkjobs: list[Obj] = field(default_factory=list)
    llmservices: list[Obj] = field(default_factory=list)
    nodes: list[Obj] = field(default_factory=list)
    pods: list[Obj] = field(default_factory=list)
    plans: list[Obj] = field(default_factory=list)
    """The fallback's recorded plans, newest first (see :func:`read_plans`)."""
    plans_note: str = ""
    """Why no plans could be read, when that is the case (no ConfigMap, forbidden)."""
    missing: list[str] = field(default_factory=list)
    """Resources the API does not serve (CRDs not installed), named for the person reading."""
    taken: datetime = field(default_factory=lambda: datetime.now(UTC))


def collect(api: client.ApiClient, *, namespace: str = DEFAULT_NAMESPACE) -> Snapshot:
    """List tenants, jobs, services, GPU nodes and fairpack's pods through ``api``, and read the
    fallback's plans from its ConfigMap in ``namespace``."""
    core = client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)
    missing: list[str] = []

    def custom_objects(plural: str) -> list[Obj]:
        try:
            listed: Any = custom.list_cluster_custom_object(GROUP, VERSION, plural)
            found: list[Obj] = listed["items"]
        except client_exceptions.ApiException as exc:
            if exc.status != 404:
                raise
            missing.append(f"{plural}.{GROUP}")
            return []
        return found

    plain = api.sanitize_for_serialization  # client objects to dicts with the API's field names
    nodes = [plain(n) for n in core.list_node().items]  # type: ignore[no-untyped-call]
    pods = [plain(p) for p in core.list_pod_for_all_namespaces().items]  # type: ignore[no-untyped-call]
    plans: list[Obj] = []
    plans_note = ""
    try:
        config_map = core.read_namespaced_config_map(PLANS_CONFIGMAP, namespace)
        plans = read_plans(config_map.data or {})
    except client_exceptions.ApiException as exc:
        if exc.status not in (403, 404):
            raise
        # Plans are one part of the picture: a person without access to them still sees the rest.
        plans_note = (
            f"no fallback plans recorded yet (no ConfigMap {namespace}/{PLANS_CONFIGMAP})"
            if exc.status == 404
            else f"fallback plans not readable: reading ConfigMap {namespace}/{PLANS_CONFIGMAP} is forbidden"
        )
    return Snapshot(
        tenants=custom_objects("tenants"),
        sparkjobs=custom_objects("sparkjobs"),
        llmservices=custom_objects("llmservices"),
        nodes=[n for n in nodes if gpu_capacity(n)],
        pods=[p for p in pods if is_fairpack_pod(p)],
        plans=plans,
        plans_note=plans_note,
        missing=missing,
    )


def read_plans(data: Mapping[str, str]) -> list[Obj]:
    """The plans of the fallback's ConfigMap ``data``, newest first.

    Each value is one plan as JSON (a list of plans is read too); values that are not are skipped,
    so a record the operator writes in a newer layout does not break the view.
    """
    plans: list[Obj] = []
    for name in sorted(data, reverse=True):
        try:
            value = json.loads(data[name])
        except ValueError:
            continue
        plans.extend(p for p in (value if isinstance(value, list) else [value]) if isinstance(p, dict))
    return sorted(plans, key=lambda p: (str(p.get("time", "")), p.get("time_ns", 0)), reverse=True)


# --- Reading objects ---------------------------------------------------------------------


def is_fairpack_pod(pod: Mapping[str, Any]) -> bool:
    """A pod of the fairpack-scheduler profile, or one that asks for GPUs or MIG instances."""
    return pod.get("spec", {}).get("schedulerName") == labels.SCHEDULER_NAME or bool(device_requests(pod))


def is_live(pod: Mapping[str, Any]) -> bool:
    """Holds its devices: bound to a node and not finished."""
    return bool(pod.get("spec", {}).get("nodeName")) and pod.get("status", {}).get("phase") not in (
        "Succeeded",
        "Failed",
    )


def device_requests(pod: Mapping[str, Any]) -> Counter[str]:
    """GPU and MIG resources the pod's containers ask for (limits, as extended resources are)."""
    wanted: Counter[str] = Counter()
    for container in pod.get("spec", {}).get("containers", []):
        resources = container.get("resources") or {}
        amounts = {**(resources.get("requests") or {}), **(resources.get("limits") or {})}
        for name, amount in amounts.items():
            if name == labels.GPU_RESOURCE or name.startswith(labels.MIG_RESOURCE_PREFIX):
                wanted[name] += int(amount)
    return wanted


def gpu_capacity(node: Mapping[str, Any]) -> int:
    """The node's physical GPUs: the GPU feature discovery count label, else its allocatable GPUs."""
    meta_labels = node.get("metadata", {}).get("labels") or {}
    if labels.GPU_COUNT_LABEL in meta_labels:
        return int(meta_labels[labels.GPU_COUNT_LABEL])
    return int((node.get("status", {}).get("allocatable") or {}).get(labels.GPU_RESOURCE, 0))


def mig_layout(node: Mapping[str, Any]) -> dict[int, list[str]]:
    """GPU index to the MIG profiles carved on it (the fairpack.io/mig-layout annotation)."""
    raw = (node.get("metadata", {}).get("annotations") or {}).get(labels.MIG_LAYOUT_ANNOTATION)
    if not raw:
        return {}
    return {int(gpu): [i["profile"] for i in instances] for gpu, instances in json.loads(raw).items()}


def mig_allocatable(node: Mapping[str, Any]) -> int:
    """MIG instances the node advertises (every nvidia.com/mig-* allocatable resource)."""
    allocatable = node.get("status", {}).get("allocatable") or {}
    return sum(int(n) for r, n in allocatable.items() if r.startswith(labels.MIG_RESOURCE_PREFIX))


def tenant_of(obj: Mapping[str, Any]) -> str:
    """The tenant of a job, service or pod ("-" when it names none)."""
    spec_tenant = obj.get("spec", {}).get("tenant")
    meta_labels = obj.get("metadata", {}).get("labels") or {}
    return str(spec_tenant or meta_labels.get(labels.TENANT_LABEL) or "-")


# --- Occupancy ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeUse:
    """One GPU node's devices and how many are taken."""

    name: str
    product: str
    gpus: int
    mig_gpus: int
    """GPUs in MIG mode (they serve MIG instances, not whole-GPU requests)."""
    gpus_used: int
    """Whole GPUs held by live pods."""
    mig_slices: int
    """MIG instances carved on the node."""
    mig_used: int
    """MIG instances held by live pods."""


def node_use(snapshot: Snapshot) -> list[NodeUse]:
    """Occupancy of every GPU node, from the requests of the live pods bound to it."""
    held: dict[str, Counter[str]] = defaultdict(Counter)
    for pod in snapshot.pods:
        if is_live(pod):
            held[pod["spec"]["nodeName"]].update(device_requests(pod))
    rows = []
    for node in snapshot.nodes:
        name = node["metadata"]["name"]
        layout = mig_layout(node)
        used = held.get(name, Counter())
        rows.append(
            NodeUse(
                name=name,
                product=(node["metadata"].get("labels") or {}).get(labels.GPU_PRODUCT_LABEL, "?"),
                gpus=gpu_capacity(node),
                mig_gpus=len(layout),
                gpus_used=used[labels.GPU_RESOURCE],
                mig_slices=sum(len(profiles) for profiles in layout.values()) or mig_allocatable(node),
                mig_used=sum(n for r, n in used.items() if r.startswith(labels.MIG_RESOURCE_PREFIX)),
            )
        )
    return sorted(rows, key=lambda r: natural(r.name))


def natural(name: str) -> tuple[str | int, ...]:
    """Sort key that orders numbers by value: ``h100-2`` before ``h100-10``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def cell(use: NodeUse) -> Text:
    """A node as one short strip: one block per whole GPU (full when taken), then its MIG instances."""
    whole = use.gpus - use.mig_gpus
    strip = Text(f"{use.name[-14:]:>14} ")
    strip.append("█" * use.gpus_used, style="green")
    strip.append("·" * max(whole - use.gpus_used, 0), style="bright_black")
    if use.mig_slices:
        strip.append(" ")
        strip.append("▪" * use.mig_used, style="magenta")
        strip.append("▫" * max(use.mig_slices - use.mig_used, 0), style="bright_black")
    return strip


def occupancy_view(snapshot: Snapshot, *, columns: int = 4) -> Group:
    """GPU/MIG occupancy: a line of totals, then a grid of ``columns`` nodes per line, and a legend."""
    uses = node_use(snapshot)
    gpus = sum(u.gpus - u.mig_gpus for u in uses)
    used = sum(u.gpus_used for u in uses)
    slices = sum(u.mig_slices for u in uses)
    slices_used = sum(u.mig_used for u in uses)
    partly = sum(1 for u in uses if 0 < u.gpus_used < u.gpus - u.mig_gpus)
    totals = Text(
        f"GPU occupancy: {used}/{gpus} whole GPUs, {slices_used}/{slices} MIG instances on {len(uses)} "
        f"nodes ({partly} partly used)",
        style="bold",
    )
    fragments, _ = fragmentation(snapshot)
    grid = Table(box=None, show_header=False, pad_edge=False)
    for _ in range(columns):
        grid.add_column(no_wrap=True)
    for start in range(0, len(uses), columns):
        grid.add_row(*(cell(u) for u in uses[start : start + columns]))
    legend = Text(
        "█ GPU in use  · GPU free  ▪ MIG instance in use  ▫ MIG instance free", style="bright_black"
    )
    return Group(totals, fragmentation_line(fragments), grid, legend)


def fragmentation(snapshot: Snapshot) -> tuple[stranding.Totals, float]:
    """(free and stranded capacity, expected fragmented GPUs) of the snapshot's GPU nodes, counted
    as the extender counts them (its cluster view over the same nodes and pods)."""
    view = cv.ClusterView()
    view.replace(snapshot.nodes, [p for p in snapshot.pods if is_live(p)])
    return verbs.cluster_fragments(view)


def fragmentation_line(totals: stranding.Totals) -> Text:
    """Stranded whole GPUs, and per MIG profile the free slots it cannot use."""
    line = Text(
        f"Fragmentation: {totals.stranded} of {totals.whole_free} free whole GPUs stranded on partly used "
        f"nodes; {totals.mig_free_slots} free MIG slots",
        style="bold",
    )
    if totals.mig_unusable:
        unusable = ", ".join(f"{p} {n}" for p, n in totals.mig_unusable.items())
        line.append(f", unusable per profile: {unusable}", style="bold")
    return line


# --- Jobs and services -------------------------------------------------------------------


def parse_time(stamp: str) -> datetime:
    """An RFC 3339 time as the API writes it."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def age(stamp: str | None, now: datetime) -> str:
    """Time since an RFC 3339 ``stamp`` as 42s, 7m or 3h."""
    if not stamp:
        return "-"
    return duration((now - parse_time(stamp)).total_seconds())


def duration(seconds: float | None) -> str:
    """``seconds`` as 42s, 7m or 3h ("-" for None)."""
    if seconds is None:
        return "-"
    seconds = int(seconds)
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def service_state(service: Mapping[str, Any]) -> str:
    """Ready, Degraded or Progressing, from the LLMService's conditions."""
    conditions = {c["type"]: c["status"] for c in service.get("status", {}).get("conditions") or []}
    if conditions.get("Degraded") == "True":
        return "Degraded"
    if conditions.get("Ready") == "True":
        return "Ready"
    return "Progressing"


def service_gpus(spec: Mapping[str, Any]) -> str:
    """A replica's devices, e.g. ``4 GPU (TP 4)`` or ``MIG 3g.40gb``."""
    gpu = spec.get("gpu") or {}
    if "migProfile" in gpu:
        return f"MIG {gpu['migProfile']}"
    tp = spec.get("tensorParallel", 1)
    return f"{gpu.get('count', 0)} GPU" + (f" (TP {tp})" if tp > 1 else "")


def jobs_table(snapshot: Snapshot) -> Table:
    """SparkJobs and LLMServices by tenant: state, queue position, devices, wait."""
    table = Table(title="Jobs by tenant", box=box.SIMPLE_HEAD)
    for column in ("Tenant", "Kind", "Name", "User", "State", "Queue", "Devices", "Waited"):
        # Names and states wrap in a narrow terminal; the short columns never do.
        table.add_column(column, no_wrap=column not in ("Name", "State", "Devices"))
    rows: list[tuple[str, int, str, list[Text | str]]] = []
    for job in snapshot.sparkjobs:
        status, spec = job.get("status") or {}, job["spec"]
        phase = status.get("phase", "Queued")
        position = status.get("queuePosition")
        executor = spec.get("executor") or {}
        driver_gpus = (spec.get("driver") or {}).get("gpus", 0)
        gpus = driver_gpus + executor.get("instances", 0) * executor.get("gpus", 0)
        # Queued jobs: how long so far; admitted ones: how long they waited.
        admitted = status.get("admittedAt")
        waited = age(status.get("submittedAt"), parse_time(admitted) if admitted else snapshot.taken)
        order = position if position is not None else -1
        rows.append(
            (
                tenant_of(job),
                order,
                job["metadata"]["name"],
                [
                    tenant_of(job),
                    "Spark",
                    job["metadata"]["name"],
                    spec.get("user", "-"),
                    Text(phase, style=STATE_STYLE.get(phase, "")),
                    "-" if position is None else str(position),
                    f"{gpus} GPU",
                    waited,
                ],
            )
        )
    for service in snapshot.llmservices:
        status, spec = service.get("status") or {}, service["spec"]
        state = service_state(service)
        replicas = f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)} ready"
        rows.append(
            (
                tenant_of(service),
                -2,
                service["metadata"]["name"],
                [
                    tenant_of(service),
                    "LLM",
                    service["metadata"]["name"],
                    "-",
                    Text(f"{state} {replicas}", style=STATE_STYLE.get(state, "")),
                    "-",
                    service_gpus(spec),
                    "-",
                ],
            )
        )
    for _, _, _, cells in sorted(rows, key=lambda r: (r[0], r[1], r[2])):
        table.add_row(*cells)
    return table


# --- Fairness ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Share:
    """A tenant's weight share against the share of the cluster's GPUs its live pods hold."""

    tenant: str
    weight: float
    weight_share: float
    """Weight over the summed weights of the tenants that have work (queued or running)."""
    gpus: int
    gpu_share: float
    """GPUs (whole GPUs plus MIG instances) its live pods hold, over all held."""
    queued: int
    running: int
    median_wait_s: float | None = None
    """Median seconds from submission to admission of its admitted SparkJobs (None: none yet)."""
    oldest_queued_s: float | None = None
    """Seconds its longest-waiting queued SparkJob has waited so far (None: nothing queued)."""


def waits(snapshot: Snapshot) -> dict[str, tuple[float | None, float | None]]:
    """Per tenant: (median wait of admitted SparkJobs, wait so far of its oldest queued one).

    The same wait the operator's ``fairpack_operator_admission_wait_seconds`` observes, read from
    the jobs' ``submittedAt`` and ``admittedAt``.
    """
    admitted: dict[str, list[float]] = defaultdict(list)
    queued: dict[str, list[float]] = defaultdict(list)
    for job in snapshot.sparkjobs:
        status = job.get("status") or {}
        if not status.get("submittedAt"):
            continue
        submitted = parse_time(status["submittedAt"])
        if status.get("admittedAt"):
            admitted[tenant_of(job)].append((parse_time(status["admittedAt"]) - submitted).total_seconds())
        elif status.get("phase", "Queued") == "Queued":
            queued[tenant_of(job)].append((snapshot.taken - submitted).total_seconds())
    return {
        t: (statistics.median(admitted[t]) if admitted[t] else None, max(queued[t]) if queued[t] else None)
        for t in set(admitted) | set(queued)
    }


def shares(snapshot: Snapshot) -> list[Share]:
    """Every tenant's share of the GPUs in use against its share of the weights."""
    weights = {t["metadata"]["name"]: float(t.get("spec", {}).get("weight", 1)) for t in snapshot.tenants}
    held: Counter[str] = Counter()
    for pod in snapshot.pods:
        if is_live(pod):
            held[tenant_of(pod)] += sum(device_requests(pod).values())
    phases: dict[str, Counter[str]] = defaultdict(Counter)
    for job in snapshot.sparkjobs:
        phases[tenant_of(job)][(job.get("status") or {}).get("phase", "Queued")] += 1
    busy = ("Queued", "Admitted", "Running")
    active = {t for t in weights if held[t] or any(phases[t][phase] for phase in busy)}
    active_weight = sum(weights[t] for t in active) or 1.0
    total = sum(held.values()) or 1
    waited = waits(snapshot)
    return [
        Share(
            tenant=name,
            weight=weight,
            weight_share=weight / active_weight if name in active else 0.0,
            gpus=held[name],
            gpu_share=held[name] / total,
            queued=phases[name]["Queued"],
            running=phases[name]["Admitted"] + phases[name]["Running"],
            median_wait_s=waited.get(name, (None, None))[0],
            oldest_queued_s=waited.get(name, (None, None))[1],
        )
        for name, weight in sorted(weights.items())
    ]


def bar(fraction: float, width: int = 12) -> str:
    """``fraction`` of ``width`` as a block bar."""
    filled = round(min(max(fraction, 0.0), 1.0) * width)
    return "█" * filled + "░" * (width - filled)


def shares_table(snapshot: Snapshot) -> Table:
    """Tenants' GPU shares against their weights (weights count only tenants with work)."""
    table = Table(title="Tenants: GPU share vs weight share", box=box.SIMPLE_HEAD)
    columns = ("Tenant", "Weight", "Weight share", "GPU share", "GPUs", "Queued", "Running", "Wait p50")
    for column in (*columns, "Oldest queued"):
        table.add_column(column, no_wrap=True, min_width=len(column))
    for s in shares(snapshot):
        style = "red" if s.gpu_share > s.weight_share + 0.25 else ""
        table.add_row(
            s.tenant,
            f"{s.weight:g}",
            f"{bar(s.weight_share)} {s.weight_share:4.0%}",
            Text(f"{bar(s.gpu_share)} {s.gpu_share:4.0%}", style=style),
            str(s.gpus),
            str(s.queued),
            str(s.running),
            duration(s.median_wait_s),
            duration(s.oldest_queued_s),
        )
    return table


# --- CP-SAT fallback ---------------------------------------------------------------------


def plans_view(snapshot: Snapshot, *, shown: int = PLANS_SHOWN) -> Group:
    """The fallback's plans: outcomes of those kept, then the newest ``shown`` in a table."""
    if not snapshot.plans:
        return Group(Text(f"Fallback plans: {snapshot.plans_note or 'none recorded'}", style="bold"))
    outcomes = Counter(str(p.get("outcome", "?")) for p in snapshot.plans)
    summary = Text(
        f"Fallback plans: {len(snapshot.plans)} kept, "
        + ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items())),
        style="bold",
    )
    table = Table(title=f"Newest fallback plans ({min(shown, len(snapshot.plans))})", box=box.SIMPLE_HEAD)
    for column in (
        "When",
        "Outcome",
        "High-priority placed",
        "Pending",
        "Pins",
        "Evictions",
        "Solve",
        "Note",
    ):
        table.add_column(column, no_wrap=column not in ("Pending", "Note"))
    for plan in snapshot.plans[:shown]:
        placed = plan.get("high_priority_placed") or {}
        outcome = str(plan.get("outcome", "?"))
        table.add_row(
            age(plan.get("time"), snapshot.taken) + " ago" if plan.get("time") else "-",
            Text(outcome, style=STATE_STYLE.get(outcome, "")),
            f"{placed.get('before', '?')} -> {placed.get('after', '?')}",
            names(plan, "pending"),
            str(count(plan, "pins")),
            str(count(plan, "evictions")),
            f"{plan['solve_s']:.2f}s" if isinstance(plan.get("solve_s"), int | float) else "-",
            str(plan.get("refusal") or ""),
        )
    return Group(summary, table)


def count(plan: Mapping[str, Any], what: str) -> int:
    """How many ``what`` (pending, pins, evictions) the plan has: its ``<what>_count`` when the
    record caps its lists, else the list's length."""
    if isinstance(plan.get(f"{what}_count"), int):
        return int(plan[f"{what}_count"])
    return len(plan.get(what) or ())


def names(plan: Mapping[str, Any], what: str, *, shown: int = 2) -> str:
    """The count of ``what`` and its first ``shown`` names."""
    listed = [str(n) for n in plan.get(what) or ()]
    total = count(plan, what)
    more = f" +{total - shown}" if total > shown else ""
    return f"{total}: {', '.join(listed[:shown])}{more}" if listed else str(total)


# --- Whole views -------------------------------------------------------------------------


def notes(snapshot: Snapshot) -> Iterable[Text]:
    """What the person should know: missing CRDs, pods waiting for a scheduler."""
    for name in snapshot.missing:
        yield Text(f"! {name} is not served: fairpack's CRDs are not installed", style="yellow")
    pending = [
        p for p in snapshot.pods if not p["spec"].get("nodeName") and not p["spec"].get("schedulingGates")
    ]
    if pending:
        yield Text(f"{len(pending)} fairpack pod(s) waiting for the scheduler", style="yellow")


def grid_columns(width: int) -> int:
    """Nodes per line of the occupancy grid that fit a terminal ``width`` characters wide."""
    return max(1, width // 34)


def status_view(snapshot: Snapshot, *, columns: int = 4) -> Group:
    """The whole picture: jobs by tenant, shares vs weights and waits, occupancy per node with its
    fragmentation, and the fallback's plans."""
    stamp = Text(f"fairpack status at {snapshot.taken:%H:%M:%S} UTC", style="bold")
    return Group(
        stamp,
        *notes(snapshot),
        jobs_table(snapshot),
        shares_table(snapshot),
        occupancy_view(snapshot, columns=columns),
        plans_view(snapshot),
    )


def summary_lines(snapshot: Snapshot) -> Sequence[str]:
    """A few plain lines that sum up the snapshot (the demo's closing summary)."""
    phases = Counter((j.get("status") or {}).get("phase", "Queued") for j in snapshot.sparkjobs)
    ready = sum(1 for s in snapshot.llmservices if service_state(s) == "Ready")
    uses = node_use(snapshot)
    lines = [
        "SparkJobs: " + (", ".join(f"{n} {phase}" for phase, n in sorted(phases.items())) or "none"),
        f"LLMServices: {ready}/{len(snapshot.llmservices)} ready",
        f"Whole GPUs in use: {sum(u.gpus_used for u in uses)}/{sum(u.gpus - u.mig_gpus for u in uses)}; "
        f"MIG instances in use: {sum(u.mig_used for u in uses)}/{sum(u.mig_slices for u in uses)}",
    ]
    lines += [
        f"Tenant {s.tenant}: GPU share {s.gpu_share:.0%} vs weight share {s.weight_share:.0%}"
        for s in shares(snapshot)
    ]
    return lines

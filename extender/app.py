"""The extender's HTTP service: ``create_app(settings)`` and its routes.

Routes are thin: bytes -> schema (:mod:`fairpack.extender.schemas`) -> decision
(:mod:`fairpack.extender.verbs`) -> schema. A body that is not the wire format gets a 400 naming
the problem, a body over the size limit a 413; a failure inside a verb is logged and answered
the way kube-scheduler understands (``Error`` for filter and bind, neutral scores for prioritize,
the scheduler's own victims for preempt), and the service keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fairpack.extender import metrics as metrics_
from fairpack.extender import schemas, verbs
from fairpack.extender import settings as settings_
from fairpack.extender import view as cv
from fairpack.solver import kube, model

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
EXPIRE_EVERY_S = 5.0


class Binder(Protocol):
    """Where binds go: the API server (:class:`fairpack.extender.watch.Binder`) or nowhere (snapshot)."""

    def read_pod(self, namespace: str, name: str) -> dict[str, Any]: ...

    def bind(self, pod: model.Pod, node: str, annotations: dict[str, str]) -> None: ...


class BadRequestError(Exception):
    """The request is not what kube-scheduler sends; the message says what is wrong."""


def create_app(settings: settings_.Settings, *, view: cv.ClusterView | None = None) -> FastAPI:
    """The extender app. Its lifespan loads the snapshot or starts the watch (``view`` given: serve
    from that view as it is, with binds in memory only, as in snapshot mode)."""
    the_view = view or cv.ClusterView(assume_ttl_s=settings.plan_freshness_s)
    metrics = metrics_.Metrics(
        staleness=the_view.staleness, fragments=lambda: verbs.cluster_fragments(the_view)
    )
    state: dict[str, Binder | None] = {"binder": None}
    pods = PodCache()
    filtered_unresolvable = metrics.filtered_out.labels("unresolvable")
    filtered_not_now = metrics.filtered_out.labels("not_now")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop: Callable[[], None] = lambda: None  # noqa: E731
        if view is None and settings.snapshot is not None:
            load_snapshot(the_view, settings.snapshot)
        elif view is None:
            from fairpack.extender import watch  # the kubernetes client only when watching

            api = watch.api_client(
                str(settings.kubeconfig) if settings.kubeconfig else None,
                connections=settings.bind_concurrency + watch.WATCHES,
            )
            watcher = watch.Watcher(api, the_view, timeout_s=settings.watch_timeout_s)
            watcher.start()
            state["binder"] = watch.Binder(api, concurrency=settings.bind_concurrency)
            stop = watcher.stop
        expiry = asyncio.create_task(_expire_forever(the_view))
        try:
            yield
        finally:
            expiry.cancel()
            await run_in_threadpool(stop)

    app = FastAPI(title="fairpack extender", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.view = the_view
    app.state.metrics = metrics
    prefix = settings.path_prefix

    async def answer(verb: str, request: Request, decide: Callable[[bytes], Awaitable[Any]]) -> Response:
        started = time.perf_counter()
        try:
            body = await request.body()
            result = await decide(body)
        except BadRequestError as error:
            metrics.errors.labels(verb, "bad_request").inc()
            log.warning("%s: bad request: %s", verb, error)
            return JSONResponse({"Error": str(error)}, status_code=400)
        finally:
            metrics.request_duration.labels(verb).observe(time.perf_counter() - started)
        if not isinstance(result, bytes):
            result = orjson.dumps(result)
        return Response(result, media_type="application/json")

    def guarded(verb: str, fallback: Callable[[], Any], decide: Callable[[], Any]) -> Any:
        try:
            return decide()
        except Exception:
            metrics.errors.labels(verb, "internal").inc()
            log.exception("%s failed", verb)
            return fallback()

    @app.post(f"{prefix}/filter")
    async def filter_(request: Request) -> Response:
        async def decide(body: bytes) -> Any:
            args = parse(schemas.ExtenderArgs, body)
            pod, names = pods.read(args.Pod), args.node_names()
            if args.NodeNames is None and args.Nodes is not None:
                for node in args.Nodes.items:
                    if str((node.get("metadata") or {}).get("name")) not in the_view.nodes:
                        the_view.upsert_node(node)

            def run() -> dict[str, Any]:
                found = verbs.filter_nodes(the_view, pod, names, plan_freshness_s=settings.plan_freshness_s)
                filtered_unresolvable.inc(len(found.unresolvable))
                filtered_not_now.inc(len(found.failed))
                # ExtenderFilterResult's fields, built as a dict: validating thousands of
                # failure reasons through the model would cost more than the decision.
                result: dict[str, Any] = {
                    "FailedNodes": found.failed,
                    "FailedAndUnresolvableNodes": found.unresolvable,
                    "Error": "",
                }
                if args.NodeNames is not None or args.Nodes is None:
                    result["NodeNames"] = found.passed
                else:
                    keep = set(found.passed)
                    result["Nodes"] = {
                        "items": [
                            n for n in args.Nodes.items if (n.get("metadata") or {}).get("name") in keep
                        ]
                    }
                return result

            return guarded(
                "filter",
                lambda: schemas.ExtenderFilterResult(
                    Error=f"fairpack extender: filter of {pod.key} failed"
                ).model_dump(exclude_none=True),
                run,
            )

        return await answer("filter", request, decide)

    @app.post(f"{prefix}/prioritize")
    async def prioritize(request: Request) -> Response:
        async def decide(body: bytes) -> Any:
            args = parse(schemas.ExtenderArgs, body)
            pod, names = pods.read(args.Pod), args.node_names()
            strategy = settings.strategies.get(pod.scheduler_name, settings.strategy)

            def run() -> bytes:
                return host_priorities(verbs.prioritize(the_view, pod, names, strategy=strategy))

            # No scores on failure: every node scores 0, so the extender sways nothing.
            return guarded("prioritize", list, run)

        return await answer("prioritize", request, decide)

    @app.post(f"{prefix}/preempt")
    async def preempt(request: Request) -> Response:
        async def decide(body: bytes) -> Any:
            args = parse(schemas.ExtenderPreemptionArgs, body)
            pod = pod_of(args.Pod)
            candidates, given = victims_of(the_view, args)

            def run() -> dict[str, Any]:
                chosen = verbs.preempt(the_view, pod, candidates)
                return result_of(chosen, given)

            return guarded(
                "preempt",
                lambda: schemas.ExtenderPreemptionResult(NodeNameToMetaVictims=given).model_dump(),
                run,
            )

        return await answer("preempt", request, decide)

    @app.post(f"{prefix}/bind")
    async def bind(request: Request) -> Response:
        async def decide(body: bytes) -> Any:
            args = parse(schemas.ExtenderBindingArgs, body)

            def run() -> dict[str, Any]:
                error = bind_pod(the_view, state["binder"], args)
                metrics.binds.labels("error" if error else "ok").inc()
                if error:
                    metrics.errors.labels("bind", "refused").inc()
                return {"Error": error}

            return await run_in_threadpool(
                guarded,
                "bind",
                lambda: {"Error": f"fairpack extender: bind of {args.PodNamespace}/{args.PodName} failed"},
                run,
            )

        return await answer("bind", request, decide)

    @app.get(f"{prefix}/healthz")
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get(f"{prefix}/readyz")
    async def readyz() -> PlainTextResponse:
        if the_view.synced:
            return PlainTextResponse("ok")
        return PlainTextResponse("cluster view not synced yet", status_code=503)

    @app.get(f"{prefix}/metrics")
    async def metrics_endpoint() -> Response:
        # In a worker thread: the fragmentation gauges may derive nodes changed since the last
        # scrape, and the verbs, which run on the event loop, must not wait for that.
        body = await run_in_threadpool(generate_latest, metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app


def parse(schema: type[M], body: bytes) -> M:
    try:
        return schema.model_validate_json(body)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}"
            for e in error.errors(include_url=False)[:5]
        )
        raise BadRequestError(f"not a {schema.__name__}: {problems}") from None


def host_priorities(groups: dict[int, list[str]]) -> bytes:
    """The HostPriorityList as JSON, written with one join per score. Node names in the view
    are DNS subdomain names (checked when a node is read), which JSON needs no escape for."""
    entries = []
    for score, names in groups.items():
        between = f'","Score":{score}}},{{"Host":"'
        entries.append(f'{{"Host":"{between.join(names)}","Score":{score}}}')
    return f"[{','.join(entries)}]".encode()


def pod_of(obj: dict[str, Any]) -> model.Pod:
    try:
        return kube.pod_from_dict(obj)
    except (kube.InvalidObjectError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise BadRequestError(f"Pod: {error}") from None


class PodCache:
    """Pods read from request bodies, by (uid, resourceVersion): kube-scheduler sends the same pod
    to filter and then prioritize, and reading it is a good part of a call's cost."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._pods: OrderedDict[tuple[str, str], model.Pod] = OrderedDict()

    def read(self, obj: dict[str, Any]) -> model.Pod:
        metadata = obj.get("metadata")
        if not isinstance(metadata, dict) or not metadata.get("uid") or not metadata.get("resourceVersion"):
            return pod_of(obj)  # without both, two different bodies could share a key
        key = (str(metadata["uid"]), str(metadata["resourceVersion"]))
        pod = self._pods.get(key)
        if pod is None:
            pod = self._pods[key] = pod_of(obj)
            if len(self._pods) > self.size:
                self._pods.popitem(last=False)
        return pod


def victims_of(
    view: cv.ClusterView, args: schemas.ExtenderPreemptionArgs
) -> tuple[dict[str, list[model.Pod]], dict[str, schemas.MetaVictims]]:
    """The scheduler's candidate victims per node as pods, and as it sent them (UIDs)."""
    candidates: dict[str, list[model.Pod]] = {}
    given: dict[str, schemas.MetaVictims] = {}
    for name, meta in (args.NodeNameToMetaVictims or {}).items():
        given[name] = meta
        candidates[name] = [view.pods[p.UID] for p in meta.Pods if p.UID in view.pods]
    for name, victims in (args.NodeNameToVictims or {}).items():
        pods = [pod_of(p) for p in victims.Pods]
        candidates[name] = pods
        given[name] = schemas.MetaVictims(
            Pods=[schemas.MetaPod(UID=p.uid) for p in pods], NumPDBViolations=victims.NumPDBViolations
        )
    return candidates, given


def result_of(chosen: dict[str, list[model.Pod]], given: dict[str, schemas.MetaVictims]) -> dict[str, Any]:
    result = schemas.ExtenderPreemptionResult(
        NodeNameToMetaVictims={
            name: schemas.MetaVictims(
                Pods=[schemas.MetaPod(UID=v.uid) for v in victims],
                NumPDBViolations=min(given[name].NumPDBViolations, len(victims)),
            )
            for name, victims in chosen.items()
        }
    )
    return result.model_dump()


def bind_pod(view: cv.ClusterView, binder: Binder | None, args: schemas.ExtenderBindingArgs) -> str:
    """Choose the devices, write them and the Binding; '' on success, else why not."""
    pod = view.pods.get(args.PodUID)
    if pod is None and binder is not None:
        pod = kube.pod_from_dict(binder.read_pod(args.PodNamespace, args.PodName))
    if pod is None or pod.uid != args.PodUID:
        return f"pod {args.PodNamespace}/{args.PodName} (uid {args.PodUID}) is not known to the extender"
    try:
        placement = verbs.reserve(view, pod, args.Node)
    except verbs.BindError as error:
        return str(error)
    if binder is None:
        view.record_binding(pod, args.Node)
        log.info(
            "bound %s to %s (in memory) with %s", pod.key, args.Node, verbs.device_annotations(placement)
        )
        return ""
    try:
        binder.bind(pod, args.Node, verbs.device_annotations(placement))
    except Exception as error:
        view.forget(pod.uid)
        log.warning("bind of %s to %s failed: %s", pod.key, args.Node, error)
        return f"binding {pod.key} to {args.Node} failed: {getattr(error, 'reason', None) or error}"
    log.info("bound %s to %s with %s", pod.key, args.Node, verbs.device_annotations(placement))
    return ""


def load_snapshot(view: cv.ClusterView, path: Any) -> None:
    with open(path) as stream:
        document = json.load(stream)
    items = document.get("items") or []
    view.replace([i for i in items if i.get("kind") == "Node"], [i for i in items if i.get("kind") == "Pod"])


async def _expire_forever(view: cv.ClusterView) -> None:
    while True:
        await asyncio.sleep(EXPIRE_EVERY_S)
        view.expire()


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413 before anything parses it."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        seen = 0

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLargeError
            return message

        try:
            await self.app(scope, counting, send)
        except _TooLargeError:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        body = json.dumps({"Error": f"request body over {self.max_bytes} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLargeError(Exception):
    pass

"""The extender's link to the API server: list+watch of Nodes and Pods into the view, and binding.

Informer-style, one thread per kind: list (which gives a resourceVersion), then watch from it,
resuming from the last event's resourceVersion when a watch call ends; a 410 Gone (the version
is too old) or any other error re-lists after a short pause. The thread exits when ``stop`` is set.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, cast

import orjson
import urllib3
from kubernetes import client, config

from fairpack.extender import view as cv
from fairpack.solver import model

log = logging.getLogger(__name__)

RETRY_S = 1.0


WATCHES = 2
"""Connections the watches hold (Nodes, Pods)."""


def api_client(kubeconfig: str | None, *, connections: int) -> client.ApiClient:
    """A client from ``kubeconfig``, else $KUBECONFIG / ~/.kube/config, else the in-cluster account,
    keeping up to ``connections`` connections alive.

    The pool holds one per concurrent bind plus the watches; beyond it, a burst of binds would
    open (and TLS-handshake) a connection per bind."""
    configuration = client.Configuration()
    configuration.connection_pool_maxsize = connections
    try:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        if kubeconfig is not None:
            raise
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


class Watcher:
    """Keeps ``view`` in step with the cluster's Nodes and Pods until :meth:`stop`."""

    def __init__(self, api: client.ApiClient, view: cv.ClusterView, *, timeout_s: int) -> None:
        self.core = client.CoreV1Api(api)
        self.view = view
        self.timeout_s = timeout_s
        self._stop = threading.Event()
        self._listed = {"Node": threading.Event(), "Pod": threading.Event()}
        self._threads = [
            threading.Thread(target=self._run, args=(kind,), name=f"watch-{kind}", daemon=True)
            for kind in self._listed
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _list_call(self, kind: str) -> Callable[..., Any]:
        return self.core.list_node if kind == "Node" else self.core.list_pod_for_all_namespaces

    def _run(self, kind: str) -> None:
        while not self._stop.is_set():
            try:
                version = self._list(kind)
                self._watch(kind, version)
            except client.ApiException as error:
                if error.status != 410:
                    log.warning("watch of %ss failed (%s %s); re-listing", kind, error.status, error.reason)
            except Exception:
                log.exception("watch of %ss failed; re-listing", kind)
            self._stop.wait(RETRY_S)

    def _list(self, kind: str) -> str:
        # Raw JSON: the view reads dicts, and skipping the client's models makes big lists cheap.
        listed = orjson.loads(self._list_call(kind)(_preload_content=False).data)
        items = listed.get("items") or []
        with self.view.lock:
            if kind == "Node":
                current = {str(i["metadata"]["name"]) for i in items}
                for name in set(self.view.nodes) - current:
                    self.view.delete_node(name)
                for item in items:
                    self.view.upsert_node(item)
            else:
                current = {str(i["metadata"]["uid"]) for i in items}
                for uid in set(self.view.pods) - current:
                    self.view.delete_pod(uid)
                for item in items:
                    self.view.upsert_pod(item)
            self._listed[kind].set()
            if all(e.is_set() for e in self._listed.values()):
                self.view.synced = True
            self.view.touch()
        log.info(
            "listed %d %ss at resourceVersion %s", len(items), kind, listed["metadata"]["resourceVersion"]
        )
        return str(listed["metadata"]["resourceVersion"])

    def _watch(self, kind: str, version: str) -> None:
        while not self._stop.is_set():
            # Our own event loop over the raw stream: the client's Watch decodes each event, then
            # encodes and decodes it again to build its return type; orjson once is several
            # times cheaper, and the watch holds the GIL the HTTP verbs need.
            response = cast(
                urllib3.HTTPResponse,
                self._list_call(kind)(
                    watch=True,
                    resource_version=version,
                    timeout_seconds=self.timeout_s,
                    allow_watch_bookmarks=True,
                    _preload_content=False,
                ),
            )
            try:
                for line in _lines(response):
                    event = orjson.loads(line)
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        raise client.ApiException(status=obj.get("code", 500), reason=obj.get("message", ""))
                    version = obj["metadata"]["resourceVersion"]
                    self._apply(kind, event["type"], obj)
                    if self._stop.is_set():
                        return
            finally:
                response.close()
                response.release_conn()

    def _apply(self, kind: str, kind_of_event: str, obj: dict[str, Any]) -> None:
        self.view.touch()
        if kind_of_event == "BOOKMARK":
            return
        if kind == "Node":
            if kind_of_event == "DELETED":
                self.view.delete_node(obj["metadata"]["name"])
            else:
                self.view.upsert_node(obj)
        elif kind_of_event == "DELETED":
            self.view.delete_pod(obj["metadata"]["uid"])
        else:
            self.view.upsert_pod(obj)


def _lines(response: urllib3.HTTPResponse) -> Iterator[bytes]:
    """The non-empty lines of a streamed response, as they arrive (one watch event per line)."""
    pending = b""
    for chunk in response.stream(amt=None, decode_content=False):
        *lines, pending = (pending + chunk).split(b"\n")
        yield from (line for line in lines if line.strip())


class Binder:
    """Writes a placement: a Binding carrying the device annotations, at most ``concurrency`` at
    once (callers beyond wait), so each finds a kept-alive connection in the client's pool."""

    def __init__(self, api: client.ApiClient, *, concurrency: int) -> None:
        self.core = client.CoreV1Api(api)
        self._slots = threading.BoundedSemaphore(concurrency)

    def read_pod(self, namespace: str, name: str) -> dict[str, Any]:
        pod = self.core.read_namespaced_pod(name, namespace)
        result: dict[str, Any] = self.core.api_client.sanitize_for_serialization(pod)
        return result

    def bind(self, pod: model.Pod, node: str, annotations: dict[str, str]) -> None:
        # The API server copies a Binding's annotations onto the pod as it binds it: one round
        # trip instead of a patch and then the Binding, and the devices and the node land together.
        body = client.V1Binding(
            metadata=client.V1ObjectMeta(
                name=pod.name, namespace=pod.namespace, uid=pod.uid, annotations=annotations or None
            ),
            target=client.V1ObjectReference(api_version="v1", kind="Node", name=node),
        )
        try:
            with self._slots:
                # _preload_content=False: the client cannot deserialise the Status the API returns.
                response = cast(
                    urllib3.HTTPResponse,
                    self.core.create_namespaced_pod_binding(
                        pod.name, pod.namespace, body, _preload_content=False
                    ),
                )
                # An unread response keeps its connection out of the pool: the next bind would
                # open (and TLS-handshake) a new one.
                response.drain_conn()
                response.release_conn()
        except client.ApiException as error:
            if error.status == 409 and self._bound_to(pod, node):
                return  # a retry of a bind that went through: done
            raise

    def _bound_to(self, pod: model.Pod, node: str) -> bool:
        current = self.core.read_namespaced_pod(pod.name, pod.namespace)
        return current.spec is not None and current.spec.node_name == node

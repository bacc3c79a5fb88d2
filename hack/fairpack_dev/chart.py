"""The Helm chart's tooling: the pinned helm binary, rendering, and the files generated from the chart.

The chart's ``crds/`` is a link to ``manifests/crds`` (one source of truth; helm follows the link
and packages the files). ``manifests/fairpack.yaml``, the chart rendered for users without Helm,
is generated: ``python -P -m fairpack_dev.chart`` (``make manifests``) rewrites it, and a test
fails when it is stale. It holds no CRD: users apply ``manifests/crds/`` first and wait until the
CRDs are Established, because a custom object in the same apply as its CRD (the chart's
ClusterKopfPeering) is refused while the CRD is still being set up.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "fairpack"
CRDS = REPO / "manifests" / "crds"
PLAIN_MANIFEST = REPO / "manifests" / "fairpack.yaml"
NAMESPACE = "fairpack-system"
RELEASE = "fairpack"

PLAIN_VALUES: Mapping[str, Any] = {
    # A rendered file cannot hold a certificate generated per install: users without Helm create
    # the Secret themselves (README: Install without Helm), or use cert-manager.
    "extender": {"tls": {"source": "secret", "secretName": "fairpack-extender-tls"}},
}
"""Values the plain manifests are rendered with (besides the defaults)."""


def versions() -> dict[str, str]:
    """The pinned versions of hack/versions.env (KUBERNETES_VERSION, HELM_VERSION, ...)."""
    pairs = (
        line.split("=", 1)
        for line in (REPO / "hack" / "versions.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    return {k.strip(): v.strip() for k, v in pairs}


def cache_bin() -> pathlib.Path:
    """Where hack/build-binaries.sh puts the binaries."""
    cache = os.environ.get("FAIRPACK_CACHE") or str(pathlib.Path.home() / ".cache" / "fairpack")
    return pathlib.Path(cache) / "bin"


def helm_binary() -> pathlib.Path:
    """The pinned helm built by hack/build-binaries.sh."""
    return cache_bin() / f"helm-{versions()['HELM_VERSION']}" / "helm"


def kubectl_binary() -> pathlib.Path:
    """The pinned kubectl built by hack/build-binaries.sh."""
    return cache_bin() / f"kubernetes-{versions()['KUBERNETES_VERSION']}" / "kubectl"


def helm(*args: str, kubeconfig: pathlib.Path | None = None, check: bool = True) -> str:
    """Run helm with ``args`` and return its standard output; raises with helm's message on failure."""
    env = dict(os.environ)
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    done = subprocess.run(
        [str(helm_binary()), *args], env=env, capture_output=True, text=True, check=False, timeout=300
    )
    if check and done.returncode != 0:
        raise HelmError(f"helm {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return done.stdout


class HelmError(RuntimeError):
    """helm exited non-zero; the message is its standard error."""


def set_args(values: Mapping[str, Any]) -> list[str]:
    """``--set-json`` flags for a nested values mapping (one per top-level key)."""
    return [f"--set-json={key}={json.dumps(value)}" for key, value in values.items()]


def render(
    values: Mapping[str, Any] | None = None,
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    include_crds: bool = False,
) -> list[dict[str, Any]]:
    """``helm template`` of the chart with ``values`` merged over the defaults, as parsed objects."""
    args = ["template", release, str(CHART), "--namespace", namespace]
    args += ["--kube-version", versions()["KUBERNETES_VERSION"].lstrip("v")]
    if include_crds:
        args.append("--include-crds")
    out = helm(*args, *set_args(values or {}))
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(objects: Sequence[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    """The one rendered object of ``kind`` whose name ends with ``name_suffix``."""
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(name_suffix)]
    if len(found) != 1:
        raise LookupError(f"{len(found)} objects of kind {kind} named *{name_suffix}")
    return found[0]


def scheduler_config(objects: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The KubeSchedulerConfiguration the chart's scheduler ConfigMap holds, parsed."""
    config: dict[str, Any] = yaml.safe_load(
        find(objects, "ConfigMap", "-scheduler-config")["data"]["config.yaml"]
    )
    return config


def plain_manifest_text() -> str:
    """manifests/fairpack.yaml as it should read: a Namespace and the rendered chart, without the
    CRDs (they are manifests/crds/, applied first)."""
    header = (
        "# fairpack for clusters without Helm: generated from charts/fairpack by `make manifests`;\n"
        "# do not edit. First apply manifests/crds/ and wait for the CRDs to be Established, and\n"
        "# create the extender's TLS Secret (README: Install with Helm, without Helm).\n"
    )
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    docs = [namespace, *render(PLAIN_VALUES)]
    return header + yaml.safe_dump_all(docs, sort_keys=False, width=120)


def write_generated() -> None:
    """Rewrite manifests/fairpack.yaml."""
    PLAIN_MANIFEST.write_text(plain_manifest_text())


def main(argv: Sequence[str] | None = None) -> int:
    """``python -P -m fairpack_dev.chart``: regenerate, or with --check report what is out of date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the generated files are stale")
    args = parser.parse_args(argv)
    if not args.check:
        write_generated()
        return 0
    if PLAIN_MANIFEST.exists() and PLAIN_MANIFEST.read_text() == plain_manifest_text():
        return 0
    print(f"out of date: {PLAIN_MANIFEST.relative_to(REPO)} (run `make manifests`)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

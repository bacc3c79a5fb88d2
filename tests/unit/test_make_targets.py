"""What the Makefile's targets would run (``make -n``): generating files builds only what it needs."""

from __future__ import annotations

import os
import pathlib
import subprocess

from fairpack_dev import cluster

REPO = pathlib.Path(__file__).resolve().parents[2]


def planned(target: str, cache: pathlib.Path) -> list[str]:
    """The commands ``make -n target`` prints with ``cache`` as the binaries' cache."""
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", target, f"FAIRPACK_CACHE={cache}"],
        cwd=REPO,
        env={**os.environ, "MAKEFLAGS": ""},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.splitlines()


def builds(commands: list[str]) -> list[str]:
    return [c for c in commands if "build-binaries.sh" in c]


def test_make_manifests_on_a_fresh_machine_builds_helm_and_not_kubernetes(tmp_path: pathlib.Path) -> None:
    assert builds(planned("manifests", tmp_path)) == ["hack/build-binaries.sh helm"]


def test_make_manifests_builds_nothing_when_helm_is_there(tmp_path: pathlib.Path) -> None:
    helm = tmp_path / "bin" / f"helm-{cluster.versions()['HELM_VERSION']}" / "helm"
    helm.parent.mkdir(parents=True)
    helm.touch()

    assert builds(planned("manifests", tmp_path)) == []

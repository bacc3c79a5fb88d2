"""The extender's settings and its snapshot mode as a process (``fairpack-extender --snapshot``)."""

from __future__ import annotations

import json
import pathlib
import socket
import subprocess
import sys
import time

import httpx
import pytest
from fairpack_dev import inventory

from fairpack.extender import settings as settings_
from fairpack.solver import labels


def test_defaults_are_the_documented_ones() -> None:
    s = settings_.load(environ={})
    assert (s.host, s.port, s.path_prefix, s.strategy) == ("0.0.0.0", 8888, "", "fgd")
    assert s.plan_freshness_s == 120.0
    assert s.max_body_bytes == 16 * 2**20
    assert s.tls_cert_file is None
    assert s.snapshot is None


def test_environment_overrides_the_config_file(tmp_path: pathlib.Path) -> None:
    config = tmp_path / "extender.yaml"
    config.write_text("port: 9000\nstrategy: spread\nstrategies: {batch: binpack}\n")
    environ = {"FAIRPACK_EXTENDER_CONFIG": str(config), "FAIRPACK_EXTENDER_PORT": "9100"}
    s = settings_.load(environ=environ)
    assert (s.port, s.strategy, s.strategies) == (9100, "spread", {"batch": "binpack"})


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        pytest.param({"FAIRPACK_EXTENDER_PORT": "http"}, "port", id="port-not-a-number"),
        pytest.param({"FAIRPACK_EXTENDER_STRATEGY": "random"}, "strategy", id="unknown-strategy"),
        pytest.param(
            {"FAIRPACK_EXTENDER_TLS_CERT_FILE": "/nonexistent"}, "tls_key_file", id="cert-without-key"
        ),
        pytest.param({"FAIRPACK_EXTENDER_PATH_PREFIX": "fairpack/"}, "path_prefix", id="bad-prefix"),
        pytest.param({"FAIRPACK_EXTENDER_PLAN_FRESHNESS_S": "-1"}, "plan_freshness_s", id="negative-window"),
    ],
)
def test_bad_settings_fail_naming_the_setting(environ: dict[str, str], named: str) -> None:
    with pytest.raises(settings_.SettingsError, match=named):
        settings_.load(environ=environ)


def test_unknown_keys_in_the_config_file_are_rejected(tmp_path: pathlib.Path) -> None:
    config = tmp_path / "extender.yaml"
    config.write_text("prot: 9000\n")
    with pytest.raises(settings_.SettingsError, match="prot"):
        settings_.load(environ={}, config_file=config)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_snapshot_mode_serves_a_kubectl_list_and_binds_in_memory(tmp_path: pathlib.Path) -> None:
    nodes = inventory.load(inventory.SMALL).nodes()
    pending = {
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {labels.GPU_RESOURCE: "8"}}}]},
        "status": {"phase": "Pending"},
    }
    snapshot = tmp_path / "cluster.json"
    snapshot.write_text(json.dumps({"kind": "List", "items": [*nodes, pending]}))
    port = free_port()
    script = pathlib.Path(sys.executable).parent / "fairpack-extender"
    process = subprocess.Popen(
        [str(script), "--snapshot", str(snapshot), "--port", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        names = ["h100-0", "h100-1"]
        body = {"Pod": pending, "NodeNames": names}
        assert httpx.post(f"{url}/filter", json=body).json()["NodeNames"] == names
        bind = {"PodName": "p", "PodNamespace": "ns", "PodUID": "u1", "Node": "h100-0"}
        assert httpx.post(f"{url}/bind", json=bind).json() == {"Error": ""}
        # The 8 GPUs of h100-0 are now held in memory: the same pod shape fits only h100-1.
        again = {**body, "Pod": {**pending, "metadata": {"name": "q", "namespace": "ns", "uid": "u2"}}}
        result = httpx.post(f"{url}/filter", json=again).json()
        assert result["NodeNames"] == ["h100-1"]
        assert result["FailedNodes"] == {"h100-0": "needs 8 GPUs; 0 free"}
    finally:
        process.terminate()
        _, err = process.communicate(timeout=15)
    assert b'"level": "ERROR"' not in err


def test_invalid_settings_stop_the_command_with_a_message(tmp_path: pathlib.Path) -> None:
    script = pathlib.Path(sys.executable).parent / "fairpack-extender"
    done = subprocess.run(
        [str(script), "--snapshot", str(tmp_path / "missing.json")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "snapshot: " in done.stderr
    assert "missing.json is not a readable file" in done.stderr

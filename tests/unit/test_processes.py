"""The dev tooling's process handling: a component that dies while starting is reported with how it ended."""

from __future__ import annotations

import pathlib

import pytest
from fairpack_dev import processes


@pytest.mark.parametrize(
    ("script", "ending"),
    [("echo starting; exit 3", "exit status 3"), ("kill -KILL $$", "killed by SIGKILL")],
)
def test_a_component_that_dies_at_start_is_reported_with_its_ending(
    tmp_path: pathlib.Path, script: str, ending: str
) -> None:
    component = processes.Component("doomed", tmp_path)
    component.start(["/bin/sh", "-c", script])
    with pytest.raises(processes.StartError) as error:
        # Nothing listens on port 9 (discard): only the death ends the wait.
        processes.wait_healthy(component, "http://127.0.0.1:9/", context=None, timeout_s=30)
    assert f"doomed exited ({ending})" in str(error.value)
    assert component.pid() is None

"""The operator's structured logs: one JSON object per line, naming the object a handler works on."""

from __future__ import annotations

import json
import logging
import sys

from fairpack.operator import main


def test_a_log_line_is_one_json_object_with_the_object_and_the_exception() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord(
            "fairpack.x", logging.ERROR, __file__, 1, "failed %s", ("once",), sys.exc_info()
        )
    record.k8s_ref = {"kind": "SparkJob", "name": "pi", "namespace": "ns"}
    line = main.JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert (entry["level"], entry["logger"], entry["message"]) == ("ERROR", "fairpack.x", "failed once")
    assert entry["object"] == {"kind": "SparkJob", "name": "pi", "namespace": "ns"}
    assert "RuntimeError: boom" in entry["exception"]

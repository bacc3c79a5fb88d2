"""``fairpack-extender``: serve the extender with uvicorn (HTTP or HTTPS with reloaded certificates).

fairpack-extender                          # watch the cluster of $KUBECONFIG / in-cluster
fairpack-extender --snapshot FILE --port N # serve a `kubectl get nodes,pods -A -o json` List
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import sys
import threading
from collections.abc import Sequence

import uvicorn

from fairpack.extender import app as app_
from fairpack.extender import settings as settings_

log = logging.getLogger(__name__)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fairpack-extender", description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=pathlib.Path, help="settings file (YAML or JSON)")
    parser.add_argument("--snapshot", type=pathlib.Path, help="serve from this List of Nodes and Pods")
    parser.add_argument("--host", help="address to listen on")
    parser.add_argument("--port", type=int, help="port to listen on")
    parser.add_argument("--kubeconfig", type=pathlib.Path, help="kubeconfig of the cluster to watch")
    return parser.parse_args(argv)


class CertificateReloader:
    """Re-reads the certificate and key into the live SSL context when either file changes."""

    def __init__(self, config: uvicorn.Config, cert: pathlib.Path, key: pathlib.Path, every_s: float) -> None:
        self.config, self.cert, self.key, self.every_s = config, cert, key, every_s
        self.stop = threading.Event()
        self._seen = self._stamp()

    def _stamp(self) -> tuple[float, float]:
        return (self.cert.stat().st_mtime, self.key.stat().st_mtime)

    def run(self) -> None:
        while not self.stop.wait(self.every_s):
            try:
                stamp = self._stamp()
                if stamp != self._seen and self.config.ssl is not None:
                    # New handshakes use the new pair; open connections keep theirs.
                    self.config.ssl.load_cert_chain(str(self.cert), str(self.key))
                    self._seen = stamp
                    log.info("reloaded TLS certificate %s", self.cert)
            except (OSError, ValueError) as error:
                log.warning("TLS certificate not reloaded (keeping the current one): %s", error)


def main(argv: Sequence[str] | None = None) -> int:
    options = arguments(argv)
    try:
        settings = settings_.load(
            config_file=options.config,
            snapshot=options.snapshot,
            host=options.host,
            port=options.port,
            kubeconfig=options.kubeconfig,
        )
    except settings_.SettingsError as error:
        print(f"fairpack-extender: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    config = uvicorn.Config(
        app_.create_app(settings),
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(settings.tls_cert_file) if settings.tls_cert_file else None,
        ssl_keyfile=str(settings.tls_key_file) if settings.tls_key_file else None,
        log_config=None,
        access_log=False,
    )
    config.load()
    reloader = None
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        reloader = CertificateReloader(
            config, settings.tls_cert_file, settings.tls_key_file, settings.tls_reload_s
        )
        threading.Thread(target=reloader.run, name="tls-reload", daemon=True).start()
    try:
        uvicorn.Server(config).run()
    finally:
        if reloader is not None:
            reloader.stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())

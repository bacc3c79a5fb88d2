"""The extender's settings: defaults, overridden by a YAML/JSON config file, then by the environment.

Every field can be set as ``FAIRPACK_EXTENDER_<FIELD>`` (upper case, e.g.
``FAIRPACK_EXTENDER_PLAN_FRESHNESS_S=60``); ``FAIRPACK_EXTENDER_CONFIG`` (or ``--config``) names a
file whose keys are the field names. Unknown keys and bad values fail at start with a message
naming the setting.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ENV_PREFIX = "FAIRPACK_EXTENDER_"

Strategy = Literal["fgd", "binpack", "spread"]


class SettingsError(ValueError):
    """Settings that cannot be used; the message names each bad setting and why."""


class Settings(BaseModel):
    """How the extender serves and decides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "0.0.0.0"
    """Address to listen on."""
    port: int = Field(8888, ge=0, le=65535)
    """Port to listen on (0: any free port)."""
    path_prefix: str = ""
    """The service root under which /filter, /prioritize, /preempt, /bind, /healthz, /readyz and
    /metrics are served (the path part of kube-scheduler's urlPrefix), e.g. ``/fairpack``."""
    tls_cert_file: pathlib.Path | None = None
    """PEM certificate to serve HTTPS with; reloaded when the file changes. None: plain HTTP."""
    tls_key_file: pathlib.Path | None = None
    """PEM private key of ``tls_cert_file``."""
    tls_reload_s: float = Field(10.0, gt=0)
    """Seconds between checks of the certificate files for changes."""
    max_body_bytes: int = Field(16 * 2**20, gt=0)
    """Largest request body accepted (413 beyond): 16 MiB holds ExtenderArgs with 5,000 full nodes."""
    snapshot: pathlib.Path | None = None
    """Serve from this ``kubectl get nodes,pods -A -o json`` List instead of watching a cluster;
    bind then records placements in memory only."""
    kubeconfig: pathlib.Path | None = None
    """Kubeconfig of the cluster to watch and bind in; None: $KUBECONFIG, else in-cluster."""
    scheduler_name: str = "fairpack-scheduler"
    """Pending pods of this scheduler are the ones whose plans (planned-node) matter."""
    plan_freshness_s: float = Field(120.0, gt=0)
    """Seconds a planned-node annotation is honoured after its planned-at time, and an assumed
    placement (bind done, watch event not yet seen) is kept."""
    strategy: Strategy = "fgd"
    """Default prioritize strategy: ``fgd`` (least growth of GPU fragmentation, packs), ``binpack``
    (fullest node first) or ``spread`` (emptiest node first)."""
    strategies: dict[str, Strategy] = Field(default_factory=dict)
    """Per scheduler profile (the pod's ``schedulerName``): its strategy, overriding ``strategy``."""
    watch_timeout_s: int = Field(300, gt=0)
    """Server-side timeout of one watch call; the watch is then resumed from its resourceVersion."""
    bind_concurrency: int = Field(16, ge=1, le=256)
    """Bindings sent to the API server at once (more wait), each over a kept-alive connection."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be set together")
        for name in ("tls_cert_file", "tls_key_file", "snapshot"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: {path} is not a readable file")
        if self.path_prefix and (not self.path_prefix.startswith("/") or self.path_prefix.endswith("/")):
            raise ValueError(f"path_prefix {self.path_prefix!r} must start with / and not end with /")
        return self


def load(
    *, environ: Mapping[str, str] | None = None, config_file: pathlib.Path | None = None, **overrides: Any
) -> Settings:
    """Settings from the defaults, the config file, the environment and ``overrides``, in that order."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_file = config_file or (
        pathlib.Path(environ[ENV_PREFIX + "CONFIG"]) if environ.get(ENV_PREFIX + "CONFIG") else None
    )
    if config_file is not None:
        try:
            document = yaml.safe_load(config_file.read_text())
        except (OSError, yaml.YAMLError) as error:
            raise SettingsError(f"config file {config_file}: {error}") from None
        if not isinstance(document, dict):
            raise SettingsError(f"config file {config_file}: expected a mapping of setting names")
        values.update(document)
    for name, field in Settings.model_fields.items():
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is not None:
            # Structured settings (dicts) are given as YAML/JSON in the variable.
            values[name] = (
                yaml.safe_load(raw) if field.annotation and "dict" in str(field.annotation) else raw
            )
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.model_validate(values)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in error.errors()
        )
        raise SettingsError(f"invalid extender settings: {problems}") from None

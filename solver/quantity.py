"""Kubernetes resource quantities ("500m", "1.5", "4Gi", "1e3", "100M") as exact integers.

Parsing follows apimachinery's ``resource.ParseQuantity``: an optional sign, decimal digits
with an optional fraction, then at most one suffix: binary SI (``Ki`` .. ``Ei``), decimal SI
(``n u m "" k M G T P E``) or a decimal exponent (``e3``, ``E-2``). Values are kept as
:class:`~fractions.Fraction` so nothing is lost before rounding, and rounding is upward as
Kubernetes' ``MilliValue()`` and ``Value()`` do: cpu ``"0.0001"`` is 1 millicore, memory
``"0.5"`` is 1 byte. Requests cannot be negative, so negative quantities are rejected too.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Final

CPU: Final = "cpu"
"""The one resource measured in millicores; every other resource is in its base unit."""

_BINARY: Final = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL: Final = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_NUMBER: Final = re.compile(r"(?P<sign>[+-]?)(?P<whole>[0-9]*)(?:\.(?P<fraction>[0-9]*))?(?P<suffix>.*)")
_EXPONENT: Final = re.compile(r"[eE](?P<power>[+-]?[0-9]+)")


class QuantityError(ValueError):
    """A value that is not a (non-negative) Kubernetes quantity; the message says where it was."""


def parse(value: str | int | float, *, where: str = "") -> Fraction:
    """The exact value of a quantity; ``where`` (e.g. ``pod ns/x: spec...cpu``) prefixes the error."""
    text = _text(value)
    match = _NUMBER.fullmatch(text) if text is not None else None
    multiplier = _multiplier(match.group("suffix")) if match else None
    if match is None or multiplier is None or not (match.group("whole") or match.group("fraction")):
        raise QuantityError(_message(value, where, "is not a Kubernetes quantity"))
    number = Fraction(f"{match.group('whole') or '0'}.{match.group('fraction') or '0'}")
    if match.group("sign") == "-" and number != 0:
        raise QuantityError(_message(value, where, "is negative"))
    return number * multiplier


def milli(value: str | int | float, *, where: str = "") -> int:
    """The quantity in thousandths, rounded up (``MilliValue()``): cpu ``"1.5"`` -> 1500."""
    return math.ceil(parse(value, where=where) * 1000)


def whole(value: str | int | float, *, where: str = "") -> int:
    """The quantity in base units, rounded up (``Value()``): ``"4Gi"`` -> 4294967296."""
    return math.ceil(parse(value, where=where))


def amount(resource: str, value: str | int | float, *, where: str = "") -> int:
    """A resource's quantity in fairpack's integer unit: millicores for cpu, base units otherwise."""
    return milli(value, where=where) if resource == CPU else whole(value, where=where)


def _text(value: str | int | float) -> str | None:
    # JSON numbers are legal in manifests (``cpu: 2``); booleans are ints to Python but not quantities.
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return repr(value) if math.isfinite(value) else None
    return value if isinstance(value, str) else None


def _multiplier(suffix: str) -> Fraction | int | None:
    if suffix in _BINARY:
        return _BINARY[suffix]
    if suffix in _DECIMAL:
        return _DECIMAL[suffix]
    exponent = _EXPONENT.fullmatch(suffix)
    return Fraction(10) ** int(exponent.group("power")) if exponent else None


def _message(value: object, where: str, problem: str) -> str:
    return f"{where}: {value!r} {problem}" if where else f"{value!r} {problem}"

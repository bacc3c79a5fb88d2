"""Argument handling shared by the sub-commands."""

from __future__ import annotations

from collections.abc import Collection


class UnknownChoiceError(ValueError):
    """A comma-separated option named something that is not among its choices."""


def choices(text: str, *, known: Collection[str], what: str = "policies") -> list[str]:
    """The names in a comma-separated option (``fifo,uwfq``), in order; raises
    UnknownChoiceError naming the unknown ones and the valid choices."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UnknownChoiceError(f"unknown {what}: {', '.join(unknown)}; choose from {', '.join(known)}")
    return names

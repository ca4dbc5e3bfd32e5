from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from django.core.management.base import CommandError

from annotation.services import ImportReport, ValidationFailed


def run_import(path: str, do_import: Callable[..., ImportReport], **kwargs: object) -> ImportReport:
    """Open FILE as bytes (each line decoded separately, so bad UTF-8 gets a line number)."""
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"{path}: no such file")
    with file.open("rb") as handle:
        try:
            return do_import(lines=handle, **kwargs)
        except ValidationFailed as exc:
            listing = "\n".join(f"  {path}: {err}" for err in exc.errors)
            raise CommandError(f"{len(exc.errors)} bad line(s); nothing was imported:\n{listing}") from None

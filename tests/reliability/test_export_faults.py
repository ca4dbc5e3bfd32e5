"""Exports under disk faults: an unwritable folder or a write that fails half-way gives a clear error and
never leaves a file that looks complete (an earlier good export stays as it was)."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotation.exports import ExportError, export_to_file
from annotation.models import Judgment
from annotation.services import assignment_next_for_annotator, judgment_submit
from tests.annotation.judging_support import make_study

pytestmark = pytest.mark.django_db


@pytest.fixture
def judged_study(alice):
    study = make_study(comparisons=30, annotators=(alice,), overlap=1, rationale_required=True)
    while (assignment := assignment_next_for_annotator(study=study, annotator=alice)) is not None:
        judgment_submit(assignment_id=assignment.pk, annotator=alice, choice="1", rationale="r" * 300)
    assert Judgment.objects.count() == 30
    return study


@contextmanager
def unwritable(folder: Path):
    """The folder refuses new files. Root ignores permission bits, so as root the process drops to
    `nobody` for the duration (the real uid stays root, which lets it come back)."""
    folder.chmod(0o555)
    as_root = os.geteuid() == 0
    try:
        if as_root:
            os.setegid(65534)
            os.seteuid(65534)
        yield
    finally:
        if as_root:
            os.seteuid(0)
            os.setegid(0)
        folder.chmod(0o755)


@contextmanager
def file_size_limit(limit: int):
    """The kernel refuses to grow any file past `limit` bytes (EFBIG), like a disk that fills up."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error, not a killed process
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@pytest.fixture
def folder():
    """A folder outside pytest's private (0700) tmp tree, so that `nobody` can reach it."""
    path = Path(tempfile.mkdtemp(prefix="pig-exports-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_an_unwritable_folder_is_a_clear_error_and_leaves_nothing(judged_study, folder):
    with (
        unwritable(folder),
        pytest.raises(ExportError, match=r"cannot write to folder .*pig-exports-.*: Permission denied"),
    ):
        export_to_file(study=judged_study, fmt="csv", path=folder / "judgments.csv")
    assert list(folder.iterdir()) == []


def test_the_command_reports_an_unwritable_folder_without_a_traceback(judged_study, folder):
    with unwritable(folder), pytest.raises(CommandError, match="cannot write to folder"):
        call_command("export_judgments", study=judged_study.slug, format="jsonl", output=str(folder / "j.jsonl"))
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet", "trl"])
def test_a_write_failing_half_way_keeps_the_earlier_export_and_leaves_no_partial_file(judged_study, tmp_path, fmt):
    target = tmp_path / f"judgments.{fmt}"
    export_to_file(study=judged_study, fmt=fmt, path=target)
    good = target.read_bytes()
    assert len(good) > 2000
    # The disk has filled up since: the same export no longer fits.
    with file_size_limit(len(good) // 3), pytest.raises(ExportError, match=r"could not write .*File too large"):
        export_to_file(study=judged_study, fmt=fmt, path=target)
    assert target.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_a_failing_first_export_leaves_no_file_at_all(judged_study, tmp_path):
    target = tmp_path / "judgments.csv"
    with file_size_limit(100), pytest.raises(CommandError, match="could not write"):
        call_command("export_judgments", study=judged_study.slug, format="csv", output=str(target))
    assert list(tmp_path.iterdir()) == []

"""Hostile and malformed uploads: every bad file gets line-numbered reasons and leaves the database as it was.

Hypothesis mixes good lines with random bytes, huge lines, deep JSON, wrong types, invalid UTF-8 and
text PostgreSQL cannot store, through the import services, the admin upload pages and the judging API."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import override_settings
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotation.jsonl import MAX_JSON_DEPTH, MAX_LINE_BYTES
from annotation.models import Assignment, Candidate, Judgment, Task
from annotation.services import ValidationFailed, assignment_next_for_annotator, candidates_import, tasks_import
from tests import factories
from tests.annotation.judging_support import make_study
from training.models import System

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
TASK_FIELDS = ("key", "domain", "full_task", "masked_task", "hidden_facts", "split", "reference_outline")
CANDIDATE_FIELDS = ("key", "questions", "answers", "outline", "metadata")


def task_row(i: int, **over: Any) -> dict[str, Any]:
    return {
        "key": f"fuzz-{i}",
        "domain": "travel",
        "full_task": f"Plan trip {i}; two travellers.",
        "masked_task": f"Plan trip {i}.",
        "hidden_facts": ["Two travellers."],
        **over,
    }


def candidate_row(key: str, **over: Any) -> dict[str, Any]:
    return {"key": key, "questions": ["Who travels?"], "answers": ["Two people."], "outline": "# Plan", **over}


def encode(obj: Any) -> bytes:
    return json.dumps(obj).encode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)

# Lines that can never be imported, each for a reason the importer must name.
certainly_bad = st.one_of(
    st.binary(min_size=1, max_size=60).map(lambda b: b"\xff" + b),  # invalid UTF-8
    st.just(b"{" + b"x" * (MAX_LINE_BYTES + 10) + b"}"),  # huge line
    st.integers(MAX_JSON_DEPTH + 1, 3000).map(lambda n: ("[" * n + "]" * n).encode()),  # deep arrays
    st.integers(MAX_JSON_DEPTH + 1, 400).map(lambda n: ('{"a":' * n + "1" + "}" * n).encode()),  # deep objects
    json_values.filter(lambda v: not isinstance(v, dict)).map(encode),  # not an object
    st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfff"]).map(lambda t: encode(task_row(7, full_task=t))),
    st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e400", b"9" * 5000]).map(
        lambda n: b'{"key": "k", "hidden_facts": ["x"], "full_task": ' + n + b"}"
    ),
    st.text(min_size=1, max_size=30).map(lambda t: b'{"key": ' + t.encode("utf-8", "surrogatepass")),  # truncated
)


def wrong_type(fields: tuple[str, ...], base: dict[str, Any]) -> st.SearchStrategy[bytes]:
    return st.builds(lambda field, value: encode({**base, field: value}), st.sampled_from(fields), json_values)


maybe_bad = st.one_of(
    st.binary(max_size=200),
    wrong_type(TASK_FIELDS, task_row(3)),
    st.integers(0, 50).map(lambda i: encode(task_row(i))),
)


def snapshot() -> tuple:
    """Everything an import could touch, as plain values."""
    return (
        sorted(Task.objects.values_list("key", "domain", "full_task", "masked_task", "hidden_facts", "split")),
        sorted(Candidate.objects.values_list("task__key", "system__name", "questions", "outline", "metadata")),
        sorted(System.objects.values_list("name", flat=True)),
    )


@pytest.fixture
def existing():
    """Rows an import might wrongly change: a task, and a system with one candidate for it."""
    task = factories.TaskFactory(key="fuzz-1")
    factories.CandidateFactory(task=task, system=factories.SystemFactory(name="fuzz-system"))
    return task


def file_lines(good: list[bytes], bad: list[bytes], maybe: list[bytes], seed: int) -> tuple[list[bytes], list[int]]:
    """Interleave the lines deterministically; returns the lines and the (1-based) numbers of the bad ones."""
    tagged = [(line, False) for line in good + maybe] + [(line, True) for line in bad]
    order = sorted(range(len(tagged)), key=lambda i: (i * 7919 + seed) % 104729)
    lines = [tagged[i][0] for i in order]
    return lines, [n for n, i in enumerate(order, start=1) if tagged[i][1]]


def assert_refused(exc: ValidationFailed, bad_numbers: list[int], n_lines: int) -> None:
    reported = {error.line for error in exc.errors}
    assert set(bad_numbers) <= reported
    assert all(1 <= error.line <= n_lines and error.message for error in exc.errors)
    assert all(str(error).startswith(f"line {error.line}: ") for error in exc.errors)


@FUZZ
@given(
    good=st.lists(st.integers(100, 200).map(lambda i: encode(task_row(i))), max_size=5, unique=True),
    bad=st.lists(certainly_bad, min_size=1, max_size=3),
    maybe=st.lists(maybe_bad, max_size=3),
    seed=st.integers(0, 1000),
)
def test_a_fuzzed_task_file_is_refused_line_by_line_and_changes_nothing(existing, good, bad, maybe, seed):
    before = snapshot()
    lines, bad_numbers = file_lines(good, bad, maybe, seed)
    with pytest.raises(ValidationFailed) as exc:
        tasks_import(lines=lines)
    assert_refused(exc.value, bad_numbers, len(lines))
    assert snapshot() == before


@FUZZ
@given(
    bad=st.lists(
        st.one_of(
            certainly_bad,
            st.builds(
                lambda field, value: encode(candidate_row("fuzz-1", **{field: value})),
                st.sampled_from(["questions", "answers", "outline"]),
                st.one_of(st.integers(), st.just([""]), st.just({}), st.just([1, 2])),
            ),
            st.sampled_from(["\x00", "\ud83d"]).map(lambda t: encode(candidate_row("fuzz-1", metadata={"note": t}))),
            st.text(min_size=1, max_size=10).map(lambda k: encode(candidate_row(f"no-such-task-{k}"))),
        ),
        min_size=1,
        max_size=3,
    ),
    maybe=st.lists(
        st.one_of(st.binary(max_size=100), wrong_type(CANDIDATE_FIELDS, candidate_row("fuzz-1"))), max_size=2
    ),
    system=st.sampled_from(["fuzz-system", "brand-new-system"]),
    seed=st.integers(0, 1000),
)
def test_a_fuzzed_candidate_file_is_refused_line_by_line_and_changes_nothing(existing, bad, maybe, system, seed):
    before = snapshot()
    lines, bad_numbers = file_lines([], bad, maybe, seed)
    with pytest.raises(ValidationFailed) as exc:
        candidates_import(lines=lines, system_name=system)
    assert_refused(exc.value, bad_numbers, len(lines))
    assert snapshot() == before


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (encode(task_row(1, full_task="a\u0000b")), "NUL"),
        (encode(task_row(1, masked_task="\ud800")), "surrogate"),
        (b'{"key": "k", "n": NaN}', "bad JSON"),
        (b'{"key": "k", "n": 1e999}', "too large"),
        (b'{"key": ' + b"1" * 5000 + b"}", "bad JSON"),
    ],
)
def test_valid_json_the_database_cannot_store_is_refused_with_a_reason(payload, reason):
    with pytest.raises(ValidationFailed) as exc:
        tasks_import(lines=[encode(task_row(0)), payload])
    assert exc.value.errors[0].line == 2
    assert reason in exc.value.errors[0].message
    assert not Task.objects.exists()


# --- Through the admin upload pages ---------------------------------------------------------------


def upload(client, url_name: str, content: bytes, **fields: str):
    url = reverse(url_name)
    return client.post(url, {"file": SimpleUploadedFile("upload.jsonl", content), **fields})


def one_line(line: bytes) -> bytes:
    # The upload is split on \n and \r; keep each fuzzed line a single line so numbers are predictable.
    return line.replace(b"\n", b" ").replace(b"\r", b" ")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    bad=st.lists(certainly_bad.map(one_line), min_size=1, max_size=2),
    maybe=st.lists(maybe_bad.map(one_line), max_size=2),
    seed=st.integers(0, 1000),
)
def test_the_admin_upload_lists_numbered_errors_for_any_bad_file(client, researcher, existing, bad, maybe, seed):
    client.force_login(researcher)
    before = snapshot()
    lines, bad_numbers = file_lines([encode(task_row(150))], bad, maybe, seed)
    response = upload(client, "admin:annotation_task_import", b"\n".join(lines) + b"\n")
    assert response.status_code == 200
    page = response.content.decode()
    assert "nothing was imported" in page
    for number in bad_numbers:
        assert f"<li>line {number}: " in page
    assert "Traceback" not in page
    assert snapshot() == before


@pytest.mark.parametrize(
    ("content", "first_bad"),
    [
        (b"\x00" * 5000, 1),
        (b"\xef\xbb\xbf" + encode(task_row(1)) + b"\r\n\xff\xfe\r\n", 2),  # BOM, CRLF, then garbage
        ("\ufeff".encode("utf-16") + encode(task_row(1)).decode().encode("utf-16"), 1),  # wrong encoding
        (b"[" * 100_000, 1),
        (b"x" * (3 * MAX_LINE_BYTES), 1),
        (b"\r".join([encode(task_row(1))] * 3), 2),  # old Mac line ends: three rows, the key repeated
    ],
    ids=["nul-bytes", "bom-crlf-garbage", "utf-16", "deep-100k", "3mb-line", "cr-only"],
)
def test_pathological_task_files_are_refused_through_the_admin(client, researcher, existing, content, first_bad):
    client.force_login(researcher)
    before = snapshot()
    response = upload(client, "admin:annotation_task_import", content)
    assert response.status_code == 200
    assert f'<ul class="errorlist" id="import-errors"><li>line {first_bad}:' in response.content.decode().replace(
        "\n", ""
    )
    assert snapshot() == before


@pytest.mark.parametrize(
    ("system", "status"),
    [("x" * 101, 200), ("", 200), ("fuzz-system", 200)],
    ids=["long-name", "empty-name", "existing"],
)
def test_the_candidate_upload_refuses_bad_files_and_bad_system_names(client, researcher, existing, system, status):
    client.force_login(researcher)
    before = snapshot()
    response = upload(client, "admin:annotation_candidate_import", b"\xff\n{}\n", system=system)
    assert response.status_code == status
    assert snapshot() == before


# --- The judging API's JSON bodies ----------------------------------------------------------------


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    body=st.one_of(
        st.binary(max_size=100),
        json_values.map(encode),
        st.fixed_dictionaries(
            {},
            optional={
                "choice": st.one_of(st.sampled_from(["1", "2", "tie", "a", ""]), json_values),
                "criteria": json_values,
                "rationale": st.one_of(st.text(max_size=30), json_values, st.just("why\u0000"), st.just("\udc80")),
                "active_seconds": st.one_of(st.sampled_from(["nan", "inf", "-1", "1e309", "12"]), json_values),
            },
        ).map(lambda d: json.dumps(d).encode()),
    ),
    endpoint=st.sampled_from(["api-submit", "api-skip", "api-flag"]),
)
def test_the_judging_api_answers_any_body_with_a_4xx_or_a_recorded_judgment(client, live_assignment, body, endpoint):
    # Hundreds of examples a second: the per-user API throttle is not what this test is about.
    with transaction.atomic(), override_settings(RATELIMIT_ENABLE=False):  # each example: the same live lease
        response = client.post(
            reverse(f"annotation:{endpoint}", args=[live_assignment.pk]), body, content_type="application/json"
        )
        assert response.status_code in (200, 201, 400, 409)
        data = response.json()
        if response.status_code >= 400:
            assert data["error"]
            assert data["message"]
            assert not Judgment.objects.exists()
            assert Assignment.objects.get(pk=live_assignment.pk).state == "active"
        transaction.set_rollback(True)


@pytest.fixture
def live_assignment(client, alice):
    study = make_study(comparisons=1, annotators=(alice,), criteria=["Relevance"])
    client.force_login(alice)
    return assignment_next_for_annotator(study=study, annotator=alice)


def test_a_nul_in_a_form_rationale_is_refused_with_a_message_not_a_500(client):
    alice = factories.UserFactory(username="alice")
    study = make_study(comparisons=1, annotators=(alice,))
    assignment = assignment_next_for_annotator(study=study, annotator=alice)
    client.force_login(alice)
    response = client.post(reverse("annotation:judge", args=[assignment.pk]), {"choice": "1", "rationale": "fine\x00"})
    assert response.status_code == 400
    assert "cannot be stored" in response.content.decode()
    assert not Judgment.objects.exists()
    response = client.post(reverse("annotation:api-skip", args=[assignment.pk]), {"reason": 5}, "application/json")
    assert response.status_code == 400
    assert response.json()["fields"]["reason"] == "The reason must be text."

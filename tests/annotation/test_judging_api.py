from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from annotation.models import Judgment, StudyKind, StudyStatus
from tests import factories
from tests.annotation.judging_support import SYSTEM_NAMES, make_study

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    """A client that enforces CSRF like a browser would."""
    return Client(enforce_csrf_checks=True)


def _login(api: Client, user) -> str:
    """As an API client does: fetch a CSRF token, log in on the login page, fetch the session's token."""
    token = api.get(reverse("annotation:api-csrf")).json()["csrf_token"]
    response = api.post(
        reverse("login"), {"username": user.username, "password": factories.PASSWORD}, HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 302, response.content
    return api.get(reverse("annotation:api-csrf")).json()["csrf_token"]


def _post(api: Client, url: str, token: str, body: dict | None = None):
    return api.post(url, json.dumps(body or {}), content_type="application/json", HTTP_X_CSRFTOKEN=token)


def test_an_annotator_drives_a_study_through_the_api(api, alice):
    study = make_study(comparisons=2, annotators=(alice,), criteria=["Relevance"], kind=StudyKind.OUTLINE)
    token = _login(api, alice)
    listing = api.get(reverse("annotation:api-studies")).json()
    assert [s["id"] for s in listing["studies"]] == [study.pk]

    served = _post(api, reverse("annotation:api-next", args=[study.pk]), token)
    assert served.status_code == 200
    assignment = served.json()["assignment"]
    assert [r["label"] for r in assignment["comparison"]["responses"]] == ["Response 1", "Response 2"]
    assert "outline_html" in assignment["comparison"]["responses"][0]
    raw = served.content.decode()
    for name in SYSTEM_NAMES:
        assert name not in raw
    assert "candidate" not in raw
    assert '"left"' not in raw

    body = {"choice": "1", "criteria": {"Relevance": "tie"}, "rationale": "Sharper.", "active_seconds": 4.2}
    recorded = _post(api, assignment["submit_url"], token, body)
    assert recorded.status_code == 201
    assert recorded.json()["status"] == "recorded"
    again = _post(api, assignment["submit_url"], token, body)
    assert again.status_code == 200
    assert again.json()["status"] == "already_recorded"
    assert Judgment.objects.count() == 1

    progress = api.get(reverse("annotation:api-progress", args=[study.pk])).json()
    assert progress["mine_done"] == 1
    assert progress["study_done"] == 1


def test_posts_without_the_csrf_token_are_refused(api, alice):
    study = make_study(comparisons=1, annotators=(alice,))
    _login(api, alice)
    response = api.post(reverse("annotation:api-next", args=[study.pk]), "{}", content_type="application/json")
    assert response.status_code == 403
    assert not study.comparisons.get().assignments.exists()


def test_anonymous_requests_get_a_401(api):
    study = make_study(comparisons=1)
    assert api.get(reverse("annotation:api-studies")).status_code == 401
    assert api.get(reverse("annotation:api-progress", args=[study.pk])).status_code == 401


def test_bad_input_gets_field_errors(api, alice):
    study = make_study(comparisons=1, annotators=(alice,), rationale_required=True)
    token = _login(api, alice)
    assignment = _post(api, reverse("annotation:api-next", args=[study.pk]), token).json()["assignment"]
    response = _post(api, assignment["submit_url"], token, {"choice": "left"})
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"choice", "rationale"}
    not_json = api.post(assignment["submit_url"], "{oops", content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert not_json.status_code == 400
    assert not Judgment.objects.exists()


def test_someone_elses_assignment_is_a_404(api, alice, bob):
    study = make_study(comparisons=1, annotators=(alice, bob))
    token = _login(api, alice)
    assignment = _post(api, reverse("annotation:api-next", args=[study.pk]), token).json()["assignment"]
    bob_api = Client(enforce_csrf_checks=True)
    bob_token = _login(bob_api, bob)
    assert bob_api.get(reverse("annotation:api-assignment", args=[assignment["id"]])).status_code == 404
    assert _post(bob_api, assignment["submit_url"], bob_token, {"choice": "1"}).status_code == 404
    assert not Judgment.objects.exists()


def test_a_closed_study_is_a_409_that_returns_the_rationale(api, alice):
    study = make_study(comparisons=1, annotators=(alice,))
    token = _login(api, alice)
    assignment = _post(api, reverse("annotation:api-next", args=[study.pk]), token).json()["assignment"]
    study.status = StudyStatus.CLOSED
    study.save()
    response = _post(api, assignment["submit_url"], token, {"choice": "1", "rationale": "Kept text"})
    assert response.status_code == 409
    assert response.json() | {"message": ""} == {"error": "study_closed", "message": "", "rationale": "Kept text"}


def test_nothing_left_says_done(api, alice):
    study = make_study(comparisons=1, annotators=(alice,))
    token = _login(api, alice)
    assignment = _post(api, reverse("annotation:api-next", args=[study.pk]), token).json()["assignment"]
    _post(api, reverse("annotation:api-skip", args=[assignment["id"]]), token, {"reason": "Not my field"})
    response = _post(api, reverse("annotation:api-next", args=[study.pk]), token).json()
    assert response["done"] is True
    assert response["assignment"] is None


def test_flag_via_the_api_needs_a_reason(api, alice):
    study = make_study(comparisons=1, annotators=(alice,))
    token = _login(api, alice)
    assignment = _post(api, reverse("annotation:api-next", args=[study.pk]), token).json()["assignment"]
    url = reverse("annotation:api-flag", args=[assignment["id"]])
    assert _post(api, url, token, {}).status_code == 400
    assert _post(api, url, token, {"reason": "Garbled"}).json()["status"] == "flagged"


def test_a_burst_of_ten_submits_a_second_is_served(api, alice):
    study = make_study(comparisons=10, annotators=(alice,))
    token = _login(api, alice)
    for _ in range(5):  # next + submit: ten POSTs
        assignment = _post(api, reverse("annotation:api-next", args=[study.pk]), token).json()["assignment"]
        assert _post(api, assignment["submit_url"], token, {"choice": "2"}).status_code == 201
    assert Judgment.objects.filter(annotator=alice).count() == 5


def test_a_runaway_client_is_throttled_per_user_with_a_json_429(api, alice, bob):
    study = make_study(comparisons=2, annotators=(alice, bob))
    token = _login(api, alice)
    assignment = _post(api, reverse("annotation:api-next", args=[study.pk]), token).json()["assignment"]
    statuses = []
    throttled = None
    for _ in range(300):  # as fast as the test client goes (hundreds a second), far beyond the limit
        response = _post(api, assignment["submit_url"], token, {"choice": "1"})
        statuses.append(response.status_code)
        if response.status_code == 429:
            throttled = response
            break
    assert throttled is not None, f"never throttled after {len(statuses)} submits"
    assert set(statuses[:-1]) <= {200, 201}
    assert throttled.json()["error"] == "throttled"
    assert "20/s" in throttled.json()["message"]
    assert throttled["Retry-After"] == "1"
    assert Judgment.objects.filter(annotator=alice).count() == 1
    # Per user: bob, at the same moment, is served.
    bob_api = Client(enforce_csrf_checks=True)
    bob_token = _login(bob_api, bob)
    assert _post(bob_api, reverse("annotation:api-next", args=[study.pk]), bob_token).status_code == 200

"""Access control: an annotator reaches only their own studies and assignments; every POST needs CSRF.

Every URL the project serves is listed below with what alice (a plain annotator) gets when she aims it
at a study that is not hers, at bob's assignment, or at researcher pages; a guard test fails when a new
URL appears without being listed here."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.hashers import get_hasher
from django.core.cache import cache
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from annotation.answers import answer_assignment_next
from annotation.models import AnswerAssignment, Assignment, AssignmentState, HumanTranscript, Judgment
from annotation.services import assignment_next_for_annotator
from tests.annotation.answer_support import make_answer_study
from tests.annotation.judging_support import make_study
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()  # login failure counters
    yield
    cache.clear()


@pytest.fixture
def world(alice, bob):
    """alice and bob judge `shared`; only bob judges `others`; bob holds a live lease in `shared`."""
    shared = make_study(comparisons=2, annotators=(alice, bob), title="Shared study")
    others = make_study(comparisons=2, annotators=(bob,), title="Bob-only study")
    bobs = assignment_next_for_annotator(study=shared, annotator=bob)
    bobs_answers = answer_assignment_next(
        study=make_answer_study(tasks=1, annotators=(alice, bob), slug="answers-shared"), annotator=bob
    )
    return {"shared": shared, "others": others, "bobs": bobs, "bobs_answers": bobs_answers}


def route(name: str, world: dict) -> str:
    """The URL `name` aimed at something alice must not touch."""
    kwargs = {
        "annotation:next": {"study_id": world["others"].pk},
        "annotation:done": {"study_id": world["others"].pk},
        "annotation:preview": {"study_id": world["shared"].pk},
        "annotation:judge": {"assignment_id": world["bobs"].pk},
        "annotation:skip": {"assignment_id": world["bobs"].pk},
        "annotation:flag": {"assignment_id": world["bobs"].pk},
        "annotation:api-progress": {"study_id": world["others"].pk},
        "annotation:api-next": {"study_id": world["others"].pk},
        "annotation:api-assignment": {"assignment_id": world["bobs"].pk},
        "annotation:api-submit": {"assignment_id": world["bobs"].pk},
        "annotation:api-skip": {"assignment_id": world["bobs"].pk},
        "annotation:api-flag": {"assignment_id": world["bobs"].pk},
        "annotation:answer": {"assignment_id": world["bobs_answers"].pk},
        "annotation:answer-skip": {"assignment_id": world["bobs_answers"].pk},
        "annotation:answer-flag": {"assignment_id": world["bobs_answers"].pk},
        "generation:try-session": {"token": "0" * 32},
        "generation:try-state": {"token": "0" * 32},
        "generation:try-save": {"token": "0" * 32},
        "results:study": {"slug": world["shared"].slug},
        "results:download": {"slug": world["shared"].slug, "fmt": "csv"},
        # Staff-only research pages refuse before looking anything up, so any id will do.
        "training:run_progress": {"pk": 1},
        "training:run_curve": {"pk": 1},
        "generation:job": {"pk": 1},
        "generation:job-progress": {"pk": 1},
        "generation:job-cancel": {"pk": 1},
        "generation:auto-eval-export": {"fmt": "csv"},
    }.get(name, {})
    return reverse(name, kwargs=kwargs)


# name → (method, status for alice, where a redirect goes). None: allowed to everyone logged in.
ALICE = {
    "annotation:home": ("GET", 200, None),
    "annotation:next": ("POST", 404, None),
    "annotation:done": ("GET", 404, None),
    "annotation:preview": ("GET", 302, ADMIN_LOGIN),
    "annotation:judge": ("POST", 404, None),
    "annotation:skip": ("POST", 404, None),
    "annotation:flag": ("POST", 404, None),
    "annotation:api-csrf": ("GET", 200, None),
    "annotation:api-studies": ("GET", 200, None),
    "annotation:api-progress": ("GET", 404, None),
    "annotation:api-next": ("POST", 404, None),
    "annotation:api-assignment": ("GET", 404, None),
    "annotation:api-submit": ("POST", 404, None),
    "annotation:api-skip": ("POST", 404, None),
    "annotation:api-flag": ("POST", 404, None),
    "annotation:answer": ("POST", 404, None),
    "annotation:answer-skip": ("POST", 404, None),
    "annotation:answer-flag": ("POST", 404, None),
    "results:study": ("GET", 403, None),
    "results:download": ("GET", 403, None),
    "login": ("GET", 200, None),
    "logout": ("POST", 302, LOGIN),
    "training:run_progress": ("GET", 302, ADMIN_LOGIN),
    "training:run_curve": ("GET", 302, ADMIN_LOGIN),
    "generation:start": ("GET", 302, ADMIN_LOGIN),
    "generation:job": ("GET", 302, ADMIN_LOGIN),
    "generation:job-progress": ("GET", 302, ADMIN_LOGIN),
    "generation:job-cancel": ("POST", 302, ADMIN_LOGIN),
    "generation:auto-eval": ("GET", 302, ADMIN_LOGIN),
    "generation:auto-eval-export": ("GET", 302, ADMIN_LOGIN),
    "generation:try": ("GET", 302, ADMIN_LOGIN),
    "generation:try-session": ("GET", 302, ADMIN_LOGIN),
    "generation:try-state": ("GET", 302, ADMIN_LOGIN),
    "generation:try-save": ("POST", 302, ADMIN_LOGIN),
}
# What someone not logged in gets from the same URLs.
ANONYMOUS = (
    {name: (method, 302, LOGIN) for name, (method, _, _) in ALICE.items()}
    | {name: entry for name, entry in ALICE.items() if entry[2] == ADMIN_LOGIN}
    | {
        "annotation:preview": ("GET", 302, ADMIN_LOGIN),
        "annotation:api-csrf": ("GET", 200, None),
        "annotation:api-studies": ("GET", 401, None),
        "annotation:api-progress": ("GET", 401, None),
        "annotation:api-next": ("POST", 401, None),
        "annotation:api-assignment": ("GET", 401, None),
        "annotation:api-submit": ("POST", 401, None),
        "annotation:api-skip": ("POST", 401, None),
        "annotation:api-flag": ("POST", 401, None),
        "login": ("GET", 200, None),
    }
)


def url_names(resolver: URLResolver | None = None, namespace: str = "") -> set[str]:
    names: set[str] = set()
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace == "admin":
                continue  # the admin is checked model by model below
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            names |= url_names(entry, inner)
        elif isinstance(entry, URLPattern) and entry.name:
            names.add(f"{namespace}{entry.name}")
    return names


def admin_urls(world: dict) -> list[str]:
    urls = [
        reverse("admin:index"),
        reverse("admin:annotation_task_import"),
        reverse("admin:annotation_candidate_import"),
    ]
    for model in admin.site._registry:
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        urls += [reverse(f"{prefix}_changelist"), reverse(f"{prefix}_add")]
        obj = model.objects.first()
        if obj is not None:
            urls += [reverse(f"{prefix}_change", args=[obj.pk]), reverse(f"{prefix}_delete", args=[obj.pk])]
    return urls


def post(client: Client, name: str, url: str):
    body = {"choice": "1", "reason": "x"}
    return client.post(url, body, "application/json") if ":api-" in name else client.post(url, body)


def unchanged(world: dict) -> None:
    bobs = Assignment.objects.get(pk=world["bobs"].pk)
    assert bobs.state == AssignmentState.ACTIVE
    assert bobs.flag_reason == ""
    assert not Judgment.objects.exists()
    assert not Assignment.objects.filter(comparison__study=world["others"]).exists()
    bobs_answers = AnswerAssignment.objects.get(pk=world["bobs_answers"].pk)
    assert (bobs_answers.state, bobs_answers.flag_reason) == (AssignmentState.ACTIVE, "")
    assert not HumanTranscript.objects.exists()


def test_every_url_is_listed_in_the_access_table():
    assert url_names() == set(ALICE)


def test_an_annotator_cannot_reach_another_study_bobs_assignments_results_or_exports(client, alice, world):
    client.force_login(alice)
    for name, (method, status, location) in ALICE.items():
        if name == "logout":
            continue  # would end the session for the rest of the loop; checked below
        url = route(name, world)
        response = post(client, name, url) if method == "POST" else client.get(url)
        assert response.status_code == status, name
        if location:
            assert response["Location"].startswith(location), name
    home = client.get(reverse("annotation:home")).content.decode()
    assert "Shared study" in home
    assert "Bob-only study" not in home
    assert [s["title"] for s in client.get(reverse("annotation:api-studies")).json()["studies"]] == ["Shared study"]
    unchanged(world)


def test_an_annotator_is_sent_to_the_admin_login_from_every_admin_page(client, alice, world):
    client.force_login(alice)
    for url in admin_urls(world):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(ADMIN_LOGIN), url
        response = client.post(url, {"action": "delete_selected", "_selected_action": [world["shared"].pk]})
        assert response.status_code == 302, url
    assert world["shared"].__class__.objects.filter(pk=world["shared"].pk).exists()
    unchanged(world)


def test_someone_not_logged_in_is_sent_to_log_in_or_gets_401(client, world):
    for name, (method, status, location) in ANONYMOUS.items():
        url = route(name, world)
        response = client.post(url) if method == "POST" else client.get(url)
        assert response.status_code == status, name
        if location:
            assert response["Location"].startswith(location), name
        if status == 401:
            assert response.json()["error"] == "unauthenticated"
    unchanged(world)


def test_every_post_without_a_csrf_token_is_refused(alice, researcher, world):
    """Annotator URLs as alice, admin URLs as the researcher: the only refusal left is CSRF's."""
    world["shared"].annotators.add(researcher)
    mine = assignment_next_for_annotator(study=world["shared"], annotator=alice)
    posts = [(alice, route(n, world).replace(str(world["bobs"].pk), str(mine.pk))) for n in ALICE]
    posts = [
        (user, url.replace(f"/study/{world['others'].pk}/", f"/study/{world['shared'].pk}/")) for user, url in posts
    ]
    posts += [(researcher, url) for url in admin_urls(world)]
    for user, url in posts:
        strict = Client(enforce_csrf_checks=True)
        strict.force_login(user)
        response = strict.post(url, {"choice": "1", "reason": "x", "action": "delete_selected"})
        assert response.status_code == 403, url
        assert b"CSRF" in response.content, url
    unchanged(world)
    assert Assignment.objects.get(pk=mine.pk).state == AssignmentState.ACTIVE

    # The same request with the token goes through: the 403s above were CSRF, nothing else.
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    token = strict.get(reverse("annotation:api-csrf")).json()["csrf_token"]
    response = strict.post(
        reverse("annotation:api-submit", args=[mine.pk]), {"choice": "1"}, "application/json", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 201


@override_settings(AXES_FAILURE_LIMIT=3)
def test_password_guesses_are_counted_per_name_and_address(client, alice):
    # Guesses on other names from this address do not touch alice's bucket (django-axes, username + address)…
    for name in ("bob", "charlie", "dave"):
        assert client.post(LOGIN, {"username": name, "password": "guess"}).status_code == 200
    # … guesses on her name from here lock her name from here only.
    for _ in range(2):
        assert client.post(LOGIN, {"username": "alice", "password": "guess"}).status_code == 200
    assert client.post(LOGIN, {"username": "alice", "password": "guess"}).status_code == 429
    response = client.post(LOGIN, {"username": "alice", "password": PASSWORD})
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    other_address = client.post(LOGIN, {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="10.0.0.7")
    assert other_address.status_code == 302


def test_sessions_last_eight_hours_by_default():
    assert settings.SESSION_COOKIE_AGE == 8 * 3600
    assert settings.SESSION_COOKIE_HTTPONLY


@override_settings(SESSION_COOKIE_AGE=1)
def test_a_session_expires_after_session_cookie_age(client, alice, world):
    response = client.post(LOGIN, {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert response.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == 1
    assert client.get(reverse("annotation:home")).status_code == 200
    time.sleep(1.2)
    assert client.get(reverse("annotation:home"))["Location"].startswith(LOGIN)
    assert client.get(reverse("annotation:api-studies")).status_code == 401


def test_passwords_use_djangos_default_pbkdf2_at_full_cost():
    hasher = get_hasher()
    assert hasher.algorithm == "pbkdf2_sha256"
    assert hasher.iterations >= 1_000_000
    assert not hasattr(settings, "PASSWORD_HASHERS") or "MD5" not in str(settings.PASSWORD_HASHERS)

"""Logins: the django-axes lockout per (username, client address), proxy-aware only when told so."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client, override_settings
from django.urls import reverse

from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

LIMIT = 3  # the default is 10 (LOGIN_FAILURE_LIMIT); each attempt costs a full password hash


@pytest.fixture(autouse=True)
def _small_limit(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT


def _attempt(client: Client, username: str, password: str, **meta: str):
    return client.post(reverse("login"), {"username": username, "password": password}, **meta)


def _fail_until_locked(client: Client, username: str, **meta: str) -> None:
    for _ in range(LIMIT - 1):
        assert _attempt(client, username, "wrong", **meta).status_code == 200
    assert _attempt(client, username, "wrong", **meta).status_code == 429  # the last allowed failure locks


def test_an_annotator_logs_in_with_the_right_password(client, alice):
    response = _attempt(client, "alice", PASSWORD)
    assert response.status_code == 302
    assert client.session.get("_auth_user_id") == str(alice.pk)


def test_repeated_failures_lock_the_name_from_that_address_even_with_the_right_password(client, alice):
    _fail_until_locked(client, "alice", REMOTE_ADDR="203.0.113.7")
    response = _attempt(client, "alice", PASSWORD, REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 429
    assert "Too many failed attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert AccessAttempt.objects.filter(username="alice", ip_address="203.0.113.7").exists()


def test_an_attacker_elsewhere_cannot_lock_alice_out_by_her_name(client, alice):
    _fail_until_locked(Client(), "alice", REMOTE_ADDR="198.51.100.66")
    assert _attempt(Client(), "alice", PASSWORD, REMOTE_ADDR="198.51.100.66").status_code == 429
    assert _attempt(client, "alice", PASSWORD, REMOTE_ADDR="203.0.113.7").status_code == 302


def test_a_success_before_the_limit_starts_the_count_again(client, alice):
    for _ in range(LIMIT - 1):
        _attempt(Client(), "alice", "wrong", REMOTE_ADDR="203.0.113.7")
    assert _attempt(Client(), "alice", PASSWORD, REMOTE_ADDR="203.0.113.7").status_code == 302
    for _ in range(LIMIT - 1):
        _attempt(Client(), "alice", "wrong", REMOTE_ADDR="203.0.113.7")
    assert _attempt(client, "alice", PASSWORD, REMOTE_ADDR="203.0.113.7").status_code == 302


@override_settings(BEHIND_PROXY=True)
def test_behind_the_proxy_people_sharing_its_address_keep_separate_buckets(client, alice, bob):
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    _fail_until_locked(Client(), "bob", HTTP_X_FORWARDED_FOR="192.168.7.20", **proxy)
    # The attacker's own forged entry comes first; the proxy appends the address it saw, which counts.
    forged = {"HTTP_X_FORWARDED_FOR": "192.168.7.21, 192.168.7.20", **proxy}
    assert _attempt(Client(), "bob", PASSWORD, **forged).status_code == 429
    assert _attempt(client, "bob", PASSWORD, HTTP_X_FORWARDED_FOR="192.168.7.21", **proxy).status_code == 302
    assert AccessAttempt.objects.get(username="bob").ip_address == "192.168.7.20"


def test_without_the_proxy_switch_a_forwarded_header_is_ignored(client, alice):
    for n in range(LIMIT):  # a new forged address each time changes nothing
        _attempt(Client(), "alice", "wrong", REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}")
    response = _attempt(client, "alice", PASSWORD, REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR="198.51.100.200")
    assert response.status_code == 429


def test_the_proxy_switch_comes_from_the_environment():
    code = "from django.conf import settings; print(settings.BEHIND_PROXY, settings.SECURE_PROXY_SSL_HEADER)"
    env = {**os.environ, "USE_X_FORWARDED_PROTO": "1", "DJANGO_SETTINGS_MODULE": "pigplatform.settings"}
    out = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert out.strip() == "True ('HTTP_X_FORWARDED_PROTO', 'https')"


def test_passwords_are_stored_hashed_with_djangos_default_hasher(alice):
    alice.refresh_from_db()
    assert alice.password.startswith(("pbkdf2_sha256$", "argon2", "scrypt"))
    assert PASSWORD not in alice.password


def test_csrf_is_enforced_on_login(alice):
    strict = Client(enforce_csrf_checks=True)
    response = strict.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 403

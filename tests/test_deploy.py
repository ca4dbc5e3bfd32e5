from __future__ import annotations

import os
import subprocess
import sys

from django.conf import settings

PRODUCTION_ENV = {
    "SECRET_KEY": "x7#k2!pq9vR$zL0m@wT4&nB8^yC1*eF6(hJ3)gD5_sA-u+iO=Qw3rTy",
    "ALLOWED_HOSTS": "pig.example.org",
    "DEBUG": "0",
    "DATABASE_URL": "postgres://pig@db.example.org/pig",
}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    strip = {"PIG_TESTING", "DEBUG", "SECRET_KEY", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"}
    clean = {k: v for k, v in os.environ.items() if k not in strip}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"}
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def _hsts(env: dict[str, str]) -> str:
    code = (
        "from django.conf import settings; "
        "print(settings.SECURE_HSTS_SECONDS, settings.SECURE_HSTS_INCLUDE_SUBDOMAINS, settings.SECURE_HSTS_PRELOAD)"
    )
    return _manage("shell", "-c", code, env=env).stdout.strip().splitlines()[-1]


def test_hsts_subdomains_and_preload_are_opt_in():
    assert _hsts(PRODUCTION_ENV) == "31536000 False False"
    opted_in = {**PRODUCTION_ENV, "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1", "SECURE_HSTS_PRELOAD": "1"}
    assert _hsts(opted_in) == "31536000 True True"
    # Opting in stays clean under `check --deploy` too.
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=opted_in)
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_pages_carry_the_security_headers():
    code = (
        "from django.test import Client; r = Client(HTTP_HOST='pig.example.org').get('/accounts/login/', secure=True); "
        "print(r.status_code, r['Strict-Transport-Security'], 'unsafe' in r['Content-Security-Policy'])"
    )
    sqlite = {**PRODUCTION_ENV, "DATABASE_URL": "sqlite:///:memory:"}
    assert _manage("shell", "-c", code, env=sqlite).stdout.strip().splitlines()[-1] == "200 max-age=31536000 False"

"""The client address that the login lockout (django-axes, settings.AXES_*) counts failures by.

Not django-ipware (which axes would use by default): it prefers a public address anywhere in
X-Forwarded-For, so a client could name any public address it likes ahead of the private one the proxy
appended, and pick its own lockout bucket. Here: with one trusted proxy (USE_X_FORWARDED_PROTO), the
address is the last X-Forwarded-For entry, which that proxy wrote; otherwise the socket's address, and
the header is ignored."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    if settings.BEHIND_PROXY:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if forwarded[-1]:
            return forwarded[-1]
    return request.META.get("REMOTE_ADDR", "")

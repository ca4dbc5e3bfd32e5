"""Login with a failure limit: guessing passwords gets slower, not easier."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse


def _keys(request: HttpRequest) -> list[str]:
    ip = request.META.get("REMOTE_ADDR", "")
    user = hashlib.sha256(request.POST.get("username", "").strip().lower().encode()).hexdigest()[:16]
    # Per address and per account: one attacker on many accounts, or many addresses on one account.
    return [f"login-fail:ip:{ip}", f"login-fail:user:{user}"]


class RateLimitedLoginView(auth_views.LoginView):
    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        limit = settings.LOGIN_FAILURE_LIMIT
        keys = _keys(request)
        if any((cache.get(k) or 0) >= limit for k in keys):
            response = self.render_to_response(self.get_context_data(rate_limited=True, form=self.get_form()))
            response.status_code = 429
            return response
        response = super().post(request, *args, **kwargs)
        if response.status_code != 302:  # a failed attempt re-renders the form
            for key in keys:
                cache.add(key, 0, timeout=settings.LOGIN_FAILURE_WINDOW)
                cache.incr(key)
        return response

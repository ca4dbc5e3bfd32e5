"""A clear "try again shortly" (503) instead of a traceback page when the database is unreachable.

During a PostgreSQL restart or failover every query raises OperationalError (cannot connect, server
closed the connection) or InterfaceError (connection already closed). Services are atomic, so a failed
request wrote nothing; the person only needs to know that retrying in a moment is safe. Any other
exception keeps Django's normal handling.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.html import escape

logger = logging.getLogger("pigplatform.unavailable")

RETRY_AFTER_SECONDS = 5
MESSAGE = "The database is briefly unavailable. Nothing was saved by this request; please try again in a moment."
DB_ERRORS = (OperationalError, InterfaceError)

# Plain on purpose: no inline style (Content-Security-Policy), and nothing here needs the database.
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Temporarily unavailable</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body>
<h1>Temporarily unavailable</h1><p id="unavailable">{message}</p>
<p><a href="">Try again</a></p></body></html>"""


def _wants_json(request: HttpRequest) -> bool:
    return "/api/" in request.path or "application/json" in request.headers.get("Accept", "")


def unavailable_response(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        response: HttpResponse = JsonResponse({"error": "unavailable", "message": MESSAGE}, status=503)
    else:
        response = HttpResponse(_PAGE.format(message=escape(MESSAGE)), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


class DatabaseUnavailableMiddleware:
    """Turns a lost database inside a view into a 503 with a message (JSON for the API)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DB_ERRORS):
            return None
        # One line, not a traceback per request: an outage would otherwise flood the log.
        logger.warning("database unavailable during %s %s: %s", request.method, request.path, exception)
        return unavailable_response(request)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: failures outside views (session save, auth middleware) reach here, not the middleware."""
    exception = sys.exc_info()[1]
    if isinstance(exception, DB_ERRORS):
        return unavailable_response(request)
    from django.views.defaults import server_error as default_server_error

    return default_server_error(request)

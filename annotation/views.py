from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from . import selectors


@login_required
def home(request: HttpRequest) -> HttpResponse:
    studies = selectors.studies_open_for_annotator(user=request.user)
    return render(request, "annotation/home.html", {"studies": studies})

from __future__ import annotations

from django.urls import path

from . import answer_views, api, views

app_name = "annotation"

urlpatterns = [
    path("", views.home, name="home"),
    path("study/<int:study_id>/next/", views.study_next, name="next"),
    path("study/<int:study_id>/done/", views.done, name="done"),
    path("study/<int:study_id>/preview/", views.preview, name="preview"),
    path("a/<int:assignment_id>/", views.judge, name="judge"),
    path("a/<int:assignment_id>/skip/", views.skip, name="skip"),
    path("a/<int:assignment_id>/flag/", views.flag, name="flag"),
    # Answer studies: the annotator plays the user.
    path("u/<int:assignment_id>/", answer_views.answer, name="answer"),
    path("u/<int:assignment_id>/skip/", answer_views.skip, name="answer-skip"),
    path("u/<int:assignment_id>/flag/", answer_views.flag, name="answer-flag"),
    # JSON API: session-authenticated, CSRF-protected (docs/judging.md).
    path("api/csrf/", api.csrf, name="api-csrf"),
    path("api/studies/", api.studies, name="api-studies"),
    path("api/studies/<int:study_id>/progress/", api.progress, name="api-progress"),
    path("api/studies/<int:study_id>/next/", api.next_assignment, name="api-next"),
    path("api/assignments/<int:assignment_id>/", api.assignment_detail, name="api-assignment"),
    path("api/assignments/<int:assignment_id>/judgment/", api.submit, name="api-submit"),
    path("api/assignments/<int:assignment_id>/skip/", api.skip, name="api-skip"),
    path("api/assignments/<int:assignment_id>/flag/", api.flag, name="api-flag"),
]

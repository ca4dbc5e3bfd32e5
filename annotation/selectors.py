"""Reads that span relations. Views, admin and exports read through here."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

from .models import Candidate, Study, StudyStatus


def studies_visible_to(*, user: AbstractBaseUser) -> QuerySet[Study]:
    """Studies an annotator may judge: listed directly or through the study's group."""
    if not user.is_authenticated:
        return Study.objects.none()
    return Study.objects.filter(Q(annotators=user) | Q(annotator_group__in=user.groups.all())).distinct()


def studies_open_for_annotator(*, user: AbstractBaseUser) -> QuerySet[Study]:
    return studies_visible_to(user=user).filter(status=StudyStatus.OPEN).order_by("title")


def study_blinding_excluded_count(*, study: Study) -> int:
    """Candidates of the study's systems left out of it because they name a system or vendor."""
    return Candidate.objects.filter(system__in=study.systems.all()).exclude(blinding_flags=[]).count()

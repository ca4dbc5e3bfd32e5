from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from annotation.models import Candidate, Comparison, Study, StudyKind, StudyStatus, Task
from training.models import Backend, System

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class SystemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = System

    name = factory.Sequence(lambda n: f"system-{n}")
    backend = Backend.STATIC


class TaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Task

    key = factory.Sequence(lambda n: f"task-{n:04d}")
    domain = factory.Iterator(["grant proposal", "travel itinerary", "legal memo"])
    full_task = factory.LazyAttribute(lambda o: f"Write an outline for {o.key}. The budget is $5,000.")
    masked_task = factory.LazyAttribute(lambda o: f"Write an outline for {o.key}.")
    hidden_facts = factory.LazyFunction(lambda: ["The budget is $5,000."])


class CandidateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Candidate

    task = factory.SubFactory(TaskFactory)
    system = factory.SubFactory(SystemFactory)
    questions = factory.LazyFunction(lambda: ["What is the budget?", "Who is the audience?"])
    answers = factory.LazyFunction(lambda: ["The budget is $5,000.", "No preference / not specified."])
    outline = "## Plan\n- Step one\n- Step two"


class StudyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Study

    slug = factory.Sequence(lambda n: f"study-{n}")
    title = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())
    kind = StudyKind.QUESTIONS
    status = StudyStatus.OPEN
    overlap = 3


class ComparisonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Comparison

    study = factory.SubFactory(StudyFactory)
    task = factory.SubFactory(TaskFactory)
    candidate_a = factory.LazyAttribute(lambda o: CandidateFactory(task=o.task))
    candidate_b = factory.LazyAttribute(lambda o: CandidateFactory(task=o.task))

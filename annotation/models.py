from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import F, Q

from training.models import System


class Split(models.TextChoices):
    TRAIN = "train"
    TEST = "test"


class Task(models.Model):
    """A real-world request in three forms: full, masked (what the model sees), and the hidden facts."""

    key = models.CharField(max_length=200, unique=True)
    domain = models.CharField(max_length=100, db_index=True)
    full_task = models.TextField()
    masked_task = models.TextField()
    hidden_facts = models.JSONField(default=list)
    # Parallel to hidden_facts: [{"slot": …, "value": …}] per fact (training.facts); [] on rows from before slots.
    fact_slots = models.JSONField(default=list, blank=True)
    reference_outline = models.TextField(blank=True)
    split = models.CharField(max_length=10, choices=Split.choices, default=Split.TEST, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.CheckConstraint(condition=~Q(full_task=""), name="task_full_not_empty"),
            models.CheckConstraint(condition=~Q(masked_task=""), name="task_masked_not_empty"),
        ]

    def __str__(self) -> str:
        return self.key


class Candidate(models.Model):
    """One system's output for one task."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="candidates")
    system = models.ForeignKey(System, on_delete=models.PROTECT, related_name="candidates")
    questions = models.JSONField(default=list)
    answers = models.JSONField(default=list, help_text="The simulated user's answer to each question.")
    revealed = models.JSONField(
        default=list, blank=True, help_text="Per answer, the indices of the hidden facts it revealed."
    )
    outline = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True, help_text="tokens, latency, prompt version, seed…")
    blinding_flags = models.JSONField(
        default=list, blank=True, help_text="Self-identifying text found in the output (never shown)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["task", "system"]
        constraints = [
            models.UniqueConstraint(fields=["task", "system"], name="candidate_unique_task_system"),
        ]

    def __str__(self) -> str:
        return f"{self.task} / {self.system}"


class StudyKind(models.TextChoices):
    QUESTIONS = "questions", "Clarification questions"
    OUTLINE = "outline", "Final outlines"


class StudyStatus(models.TextChoices):
    DRAFT = "draft"
    OPEN = "open"
    CLOSED = "closed"


class Study(models.Model):
    slug = models.SlugField(max_length=100, unique=True)
    title = models.CharField(max_length=200)
    instructions = models.TextField(blank=True, help_text="Markdown, shown to annotators.")
    kind = models.CharField(max_length=20, choices=StudyKind.choices)
    systems = models.ManyToManyField(System, related_name="studies", blank=True)
    reference_system = models.ForeignKey(
        System,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="If set, each system is compared against this one; otherwise all pairs.",
    )
    overlap = models.PositiveSmallIntegerField(default=3, help_text="Distinct annotators per comparison.")
    criteria = models.JSONField(default=list, blank=True, help_text='e.g. ["Relevance", "Specificity"]')
    rationale_required = models.BooleanField(default=False)
    rationale_min_length = models.PositiveIntegerField(default=0)
    show_hidden_context = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=StudyStatus.choices, default=StudyStatus.DRAFT)
    annotators = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="studies")
    annotator_group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.SET_NULL)
    lease_minutes = models.PositiveIntegerField(default=30)
    quota_per_annotator = models.PositiveIntegerField(null=True, blank=True)
    gold_rate = models.FloatField(default=0.1, help_text="Share of served comparisons that are gold.")
    gold_min_accuracy = models.FloatField(default=0.7)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "studies"
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="study_overlap_positive"),
            models.CheckConstraint(condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1), name="study_gold_rate"),
        ]

    def __str__(self) -> str:
        return self.slug


class Choice(models.TextChoices):
    A = "a", "A"
    B = "b", "B"
    TIE = "tie", "Tie"


class Comparison(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="comparisons")
    task = models.ForeignKey(Task, on_delete=models.PROTECT, related_name="comparisons")
    candidate_a = models.ForeignKey(Candidate, on_delete=models.PROTECT, related_name="+")
    candidate_b = models.ForeignKey(Candidate, on_delete=models.PROTECT, related_name="+")
    is_gold = models.BooleanField(default=False)
    gold_choice = models.CharField(max_length=3, choices=Choice.choices, blank=True)
    # Judgments + live leases, kept by the assignment service under a row lock so that the
    # next-comparison query can order by it without counting joins.
    slots_taken = models.PositiveSmallIntegerField(default=0)
    judgments_count = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["study", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "task", "candidate_a", "candidate_b"], name="comparison_unique_pair"
            ),
            models.CheckConstraint(condition=~Q(candidate_a=F("candidate_b")), name="comparison_distinct"),
            models.CheckConstraint(condition=Q(is_gold=False) | ~Q(gold_choice=""), name="comparison_gold_has_answer"),
        ]
        indexes = [
            models.Index(fields=["study", "slots_taken"], name="comparison_next_idx"),
            # The next-comparison query walks this in order and stops after a short window, instead
            # of scanning every open comparison of the study.
            models.Index(fields=["study", "is_gold", "slots_taken"], name="comparison_next_gold_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.study} #{self.pk} ({self.task})"


class AssignmentState(models.TextChoices):
    ACTIVE = "active"
    SUBMITTED = "submitted"
    SKIPPED = "skipped"
    EXPIRED = "expired"


class Side(models.TextChoices):
    A = "a", "Candidate A on the left"
    B = "b", "Candidate B on the left"


class Assignment(models.Model):
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    left = models.CharField(max_length=1, choices=Side.choices, help_text="Which candidate was shown left.")
    state = models.CharField(max_length=10, choices=AssignmentState.choices, default=AssignmentState.ACTIVE)
    lease_expires_at = models.DateTimeField()
    skip_reason = models.TextField(blank=True)
    flag_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # An annotator is never served the same comparison twice, whatever happened the first time.
            models.UniqueConstraint(fields=["comparison", "annotator"], name="assignment_unique_annotator"),
        ]
        indexes = [
            models.Index(fields=["annotator", "state"], name="assignment_annotator_state"),
            # Reclaiming expired leases scans only live leases, however many finished assignments exist.
            models.Index(fields=["lease_expires_at"], condition=Q(state="active"), name="assignment_live_lease"),
        ]

    def __str__(self) -> str:
        return f"{self.comparison} → {self.annotator}"


class Judgment(models.Model):
    """An annotator's verdict; `choice` is relative to the comparison's candidates, not screen sides.

    Immutable once submitted."""

    assignment = models.OneToOneField(Assignment, on_delete=models.PROTECT, related_name="judgment")
    comparison = models.ForeignKey(Comparison, on_delete=models.PROTECT, related_name="judgments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="judgments")
    choice = models.CharField(max_length=3, choices=Choice.choices)
    criteria = models.JSONField(default=dict, blank=True, help_text="criterion → a/b/tie")
    rationale = models.TextField(blank=True)
    seconds = models.FloatField(help_text="Server-measured: assignment served → judgment stored.")
    active_seconds = models.FloatField(null=True, blank=True, help_text="Client-measured visible+focused time.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["comparison", "annotator"], name="judgment_unique_annotator"),
            models.CheckConstraint(condition=Q(choice__in=["a", "b", "tie"]), name="judgment_choice_valid"),
            models.CheckConstraint(condition=Q(seconds__gte=0), name="judgment_seconds_nonneg"),
        ]

    def __str__(self) -> str:
        return f"{self.comparison} by {self.annotator}: {self.choice}"


class AnnotatorFlag(models.Model):
    """A researcher's (or the gold check's) decision to exclude an annotator's judgments of a study."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="annotator_flags")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["study", "annotator"], name="flag_unique_annotator")]

    def __str__(self) -> str:
        return f"{self.annotator} excluded from {self.study}"


class StudyAnnotatorQuality(Study):
    """Admin entry point for a study's per-annotator table (counts, gold accuracy, timing, position habit)."""

    class Meta:
        proxy = True
        verbose_name = "annotator quality"
        verbose_name_plural = "annotator quality"

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Backend(models.TextChoices):
    TRANSFORMERS = "transformers", "transformers (local model)"
    VLLM = "vllm", "vLLM (offline engine)"
    OPENAI = "openai", "OpenAI-compatible endpoint"
    STATIC = "static", "static (imported outputs)"


class System(models.Model):
    """A generator of candidates. Its name is for researchers only: never shown to annotators."""

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    backend = models.CharField(max_length=20, choices=Backend.choices, default=Backend.STATIC)
    model_path = models.CharField(
        max_length=500, blank=True, help_text="Local model directory, or the model name at an endpoint."
    )
    endpoint = models.CharField(max_length=500, blank=True, help_text="Base URL for the openai backend.")
    generation_params = models.JSONField(
        default=dict, blank=True, help_text='e.g. {"max_questions": 5, "temperature": 0.7, "max_new_tokens": 256}'
    )
    training_run = models.ForeignKey(
        "training.TrainingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="systems"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


# Nothing more will happen to a job or run in one of these states (until a researcher resumes it).
FINISHED_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


class GenerationJob(models.Model):
    """Generate candidates for a set of tasks with one system; progress counted per (task, system)."""

    system = models.ForeignKey(System, on_delete=models.CASCADE, related_name="generation_jobs")
    task_ids = models.JSONField(default=list, help_text="Primary keys of the tasks to generate for.")
    simulator = models.CharField(max_length=20, default="embedding")
    # Set for a job that writes outlines from people's answers (an `answer` study) instead of running the
    # whole pipeline: `system` is then the derived "<source>-human-answers" system that receives them.
    answers_study = models.ForeignKey(
        "annotation.Study", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    answers_source = models.ForeignKey(System, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reward_spec = models.JSONField(
        default=dict, blank=True, help_text="The frozen reward spec the simulated user answered under."
    )
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    tokens = models.PositiveBigIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="[{task_key, error}] for permanent failures")
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(done__lte=models.F("total")), name="genjob_done_lte_total"),
        ]

    def __str__(self) -> str:
        return f"Generation #{self.pk} ({self.system})"


class ChunkStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class GenerationChunk(models.Model):
    """A slice of a GenerationJob run by one Celery task.

    Its status moves queued → running → done/failed/cancelled by compare-and-set, and the move to a
    final state commits together with the chunk's candidates and the job's counters: a redelivered
    message (acks_late after a worker died) can therefore never count the same tasks twice."""

    job = models.ForeignKey(GenerationJob, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    task_ids = models.JSONField(default=list)
    status = models.CharField(max_length=10, choices=ChunkStatus.choices, default=ChunkStatus.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    # Live view of the running attempt, written as it goes (not with the settle): tasks whose outline is
    # final, and what the chunk is doing ("loading model…", "writing outlines"). Reset when (re)claimed;
    # the job's own counters stay the exactly-once record.
    progress = models.PositiveIntegerField(default=0)
    stage = models.CharField(max_length=40, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["job", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="genchunk_unique_index")]

    def __str__(self) -> str:
        return f"{self.job} chunk {self.index}"


class Algorithm(models.TextChoices):
    GRPO = "grpo", "GRPO (online RL on the elicitation reward)"
    DPO = "dpo", "DPO (offline, on the human preferences of studies or a trl export)"


class Device(models.TextChoices):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class TrainingRun(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    base_system = models.ForeignKey(
        System,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Start from this system's model (or give a base model path).",
    )
    base_model_path = models.CharField(max_length=500, blank=True)
    task_split = models.CharField(max_length=20, blank=True, help_text="Train on tasks of this split.")
    task_study = models.ForeignKey(
        "annotation.Study", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    tasks_file = models.CharField(max_length=500, blank=True, help_text="Or a JSONL file of tasks.")
    algorithm = models.CharField(max_length=10, choices=Algorithm.choices, default=Algorithm.GRPO)
    # DPO only: where the preference pairs come from (studies, or a `trl` export file), how they are built and
    # split (training.preferences.DEFAULT_PREFERENCE_CONFIG), and the held-out accuracy measured by the run.
    preference_studies = models.ManyToManyField(
        "annotation.Study", blank=True, related_name="+", help_text="DPO: questions or outline studies."
    )
    preferences_file = models.CharField(
        max_length=500, blank=True, help_text="DPO: or a trl export (`export_judgments --format trl --prompt chat`)."
    )
    preference_config = models.JSONField(default=dict, blank=True)
    preference_eval = models.JSONField(default=dict, blank=True)
    reward_config = models.JSONField(default=dict, blank=True)
    reward_spec = models.JSONField(
        default=dict,
        blank=True,
        help_text="The frozen reward spec this run trains on: the evaluation spec unless reward_config overrides it.",
    )
    decoding_overrides = models.JSONField(
        default=dict,
        blank=True,
        help_text="Decoding parameters for the registered System that differ from the base System's "
        '(e.g. {"temperature": 0.0}); empty: inherit them all.',
    )
    hyperparameters = models.JSONField(default=dict, blank=True)
    device = models.CharField(max_length=10, choices=Device.choices, default=Device.AUTO)
    num_processes = models.PositiveSmallIntegerField(default=1)
    deepspeed_config = models.CharField(max_length=500, blank=True)
    # Warm start: a supervised (SFT) phase of this same run before GRPO, on question sets that are known good.
    warm_start_source = models.CharField(
        max_length=200,
        blank=True,
        help_text='Warm start examples: "system:NAME" (that system\'s candidates on train-split tasks) or '
        '"study:SLUG" (the human-preferred candidates of a questions study, train-split tasks). Empty: none.',
    )
    warm_start_steps = models.PositiveIntegerField(
        default=0, help_text="Supervised (SFT) steps before GRPO; 0 skips the warm start."
    )
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED)
    step = models.PositiveIntegerField(default=0)
    max_steps = models.PositiveIntegerField(default=0)
    output_dir = models.CharField(max_length=500, blank=True)
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # A fencing token: every start/resume bumps it, and the supervisor and training process write only while
    # it still matches, so a process orphaned by a dead worker can never overwrite a resumed run.
    attempt = models.PositiveIntegerField(default=0)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    last_completions = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class Phase(models.TextChoices):
    SFT = "sft", "warm start (SFT)"
    GRPO = "grpo", "GRPO"


class TrainingMetric(models.Model):
    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="metrics")
    # One curve per run: warm-start steps come first (1..S), GRPO steps continue (S+1..S+G).
    step = models.PositiveIntegerField()
    phase = models.CharField(max_length=10, choices=Phase.choices, default=Phase.GRPO)
    values = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "step"]
        constraints = [models.UniqueConstraint(fields=["run", "step"], name="metric_unique_run_step")]

    def __str__(self) -> str:
        return f"{self.run} step {self.step}"


class AutoEvalJob(models.Model):
    """One automatic evaluation run by a worker (`generation.auto_eval`): the systems' candidates are scored
    one by one (`done` of `total`), then one AutoEvalResult per system is stored with the job."""

    systems = models.ManyToManyField(System, related_name="+")
    baseline = models.ForeignKey(System, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    split = models.CharField(max_length=20, blank=True)
    matcher = models.CharField(max_length=20, default="embedding")
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Auto-eval job #{self.pk}"


class AutoEvalResult(models.Model):
    """Automatic evaluation of one system on a task split (the paper's automatic metric)."""

    job = models.ForeignKey(AutoEvalJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="results")
    system = models.ForeignKey(System, on_delete=models.CASCADE, related_name="auto_evals")
    baseline = models.ForeignKey(System, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    split = models.CharField(max_length=20, blank=True)
    n_tasks = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict)
    reward_spec = models.JSONField(default=dict, blank=True, help_text="The one spec every system was scored under.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Auto-eval #{self.pk} ({self.system})"

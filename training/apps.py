from __future__ import annotations

from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Systems, generation and training"

    def ready(self) -> None:
        from celery.signals import worker_ready

        from .worker_info import on_worker_ready

        worker_ready.connect(on_worker_ready, dispatch_uid="training.worker_info")

"""Reads the human judgments behind preference pairs: for the `trl` export and for DPO training runs (their
pairs, their problems before any model loads, and the spec their training process reads).

Comparisons are read in id order, a block at a time with their judgments, so memory stays bounded however
large the study; `training.preferences.comparison_pairs` turns each into pairs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotation.models import Comparison, Judgment, Study, StudyKind
from annotation.selectors_stats import flagged_annotator_ids

from .dpo import DPOSpec, chat_template_problems, dpo_hyperparameter_problems, merged_dpo_hyperparameters
from .preferences import (
    CandidateText,
    ComparisonVotes,
    PairReport,
    build_pairs,
    heldout_task_keys,
    merged_preference_config,
    pairs_from_trl_file,
    preference_config_problems,
    split_of,
)

BLOCK = 1000
PAIR_KINDS = (StudyKind.QUESTIONS, StudyKind.OUTLINE)
_FIELDS = (
    "id",
    "task__key",
    "task__masked_task",
    "task__hidden_facts",
    "candidate_a__system__name",
    "candidate_a__questions",
    "candidate_a__revealed",
    "candidate_a__outline",
    "candidate_b__system__name",
    "candidate_b__questions",
    "candidate_b__revealed",
    "candidate_b__outline",
)


def study_task_keys(*, studies: Iterable[Study], exclude_gold: bool = True) -> set[str]:
    """The tasks the studies compared: the population the held-out split is drawn from."""
    rows = Comparison.objects.filter(study__in=list(studies))
    if exclude_gold:
        rows = rows.filter(is_gold=False)
    return set(rows.values_list("task__key", flat=True).distinct())


def study_comparison_votes(
    *, study: Study, exclude_flagged: bool = True, exclude_gold: bool = True, report: PairReport | None = None
) -> Iterator[ComparisonVotes]:
    """Every comparison of the study with the choices that count, in comparison order."""
    report = report if report is not None else PairReport()
    comparisons = Comparison.objects.filter(study=study)
    if exclude_gold:
        report.drop("gold", comparisons.filter(is_gold=True).count())
        comparisons = comparisons.filter(is_gold=False)
    flagged = flagged_annotator_ids(study=study) if exclude_flagged else set()
    last = 0
    while True:
        block = list(comparisons.filter(pk__gt=last).order_by("pk").values_list(*_FIELDS)[:BLOCK])
        if not block:
            return
        last = block[-1][0]
        choices: dict[int, list[str]] = {row[0]: [] for row in block}
        judgments = Judgment.objects.filter(comparison_id__in=list(choices)).order_by("comparison_id", "pk")
        for cid, annotator, choice in judgments.values_list("comparison_id", "annotator_id", "choice"):
            if annotator in flagged:
                report.drop("flagged_judgments")
            else:
                choices[cid].append(choice)
        for cid, key, masked, facts, sa, qa, ra, oa, sb, qb, rb, ob in block:
            yield ComparisonVotes(
                comparison=cid,
                kind=study.kind,
                task_key=key,
                masked_task=masked,
                hidden_facts=[str(f) for f in facts or []],
                a=CandidateText(system=sa, questions=list(qa or []), revealed=list(ra or []), outline=oa or ""),
                b=CandidateText(system=sb, questions=list(qb or []), revealed=list(rb or []), outline=ob or ""),
                choices=choices[cid],
            )


@dataclass
class PairSet:
    """A run's preference pairs, split by task, with what was dropped and why."""

    train: list[dict[str, Any]] = field(default_factory=list)
    heldout: list[dict[str, Any]] = field(default_factory=list)
    report: PairReport = field(default_factory=PairReport)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        tasks = {p["task_key"] for p in self.heldout}
        return {
            **self.report.as_json(),
            "train_pairs": len(self.train),
            "heldout_pairs": len(self.heldout),
            "heldout_tasks": len(tasks),
        }


def _record(pair: Any) -> dict[str, Any]:
    return {"prompt": pair.prompt, "chosen": pair.chosen, "rejected": pair.rejected, "task_key": pair.task_key}


def preference_pairs_for_studies(*, studies: list[Study], config: dict[str, Any]) -> PairSet:
    cfg = merged_preference_config(config)
    result = PairSet()
    for study in studies:
        if study.kind not in PAIR_KINDS:
            result.problems.append(
                f"study {study.slug} is a {study.kind!r} study; DPO takes questions or outline studies"
            )
    if result.problems:
        return result
    heldout = heldout_task_keys(
        study_task_keys(studies=studies, exclude_gold=cfg["exclude_gold"]), share=cfg["heldout_share"], seed=cfg["seed"]
    )
    for study in studies:
        report = PairReport()
        votes = study_comparison_votes(
            study=study, exclude_flagged=cfg["exclude_flagged"], exclude_gold=cfg["exclude_gold"], report=report
        )
        for pair in build_pairs(votes, config=cfg, report=report):
            (result.heldout if split_of(pair.task_key, heldout) == "heldout" else result.train).append(_record(pair))
        if not report.pairs:
            result.problems.append(f"study {study.slug} has no decisive judgments after filtering ({report})")
        result.report.pairs += report.pairs
        result.report.comparisons += report.comparisons
        result.report.dropped.update(report.dropped)
        result.report.per_source[study.slug] = report.pairs
    return result


def preference_pairs_from_file(*, path: str, config: dict[str, Any]) -> PairSet:
    cfg = merged_preference_config(config)
    rows, problems = pairs_from_trl_file(path)
    result = PairSet(problems=problems)
    if problems:
        return result
    # The file's own split column is kept when every row has one (an export made with `--split`).
    if not all("split" in row for row in rows):
        heldout = heldout_task_keys((r["task_key"] for r in rows), share=cfg["heldout_share"], seed=cfg["seed"])
        for row in rows:
            row["split"] = split_of(row["task_key"], heldout)
    for row in rows:
        (result.heldout if row.pop("split") == "heldout" else result.train).append(row)
    result.report.pairs = result.report.comparisons = len(rows)
    result.report.per_source[path] = len(rows)
    return result


# ---------------------------------------------------------------- a DPO run's pairs, problems and spec


def training_run_preference_pairs(run: Any) -> PairSet:
    """A DPO run's pairs from its one preference source: studies or a `trl` export file."""
    studies = list(run.preference_studies.order_by("slug")) if run.pk else []
    if bool(studies) == bool(run.preferences_file):
        return PairSet(problems=["choose exactly one preference source: one or more studies, or a trl export file"])
    config_problems = preference_config_problems(run.preference_config)
    if config_problems:
        return PairSet(problems=config_problems)
    if run.preferences_file:
        return preference_pairs_from_file(path=run.preferences_file, config=run.preference_config)
    return preference_pairs_for_studies(studies=studies, config=run.preference_config)


def _pair_problems(pairs: PairSet, share: float) -> list[str]:
    if pairs.problems:
        return pairs.problems
    if not pairs.train and not pairs.heldout:
        return [f"no preference pairs after filtering ({pairs.report})"]
    problems = []
    if not pairs.train:
        problems.append("no training pairs: every pair fell in the held-out tasks")
    if share > 0 and not pairs.heldout:
        problems.append("no held-out pairs: too few tasks for the held-out share (or set heldout_share to 0)")
    return problems


def dpo_run_problems(run: Any, *, model_path: Path | None) -> list[str]:
    """Everything that would make a DPO run fail, found without loading a model: its hyperparameters and
    preference options, its pairs, and whether the base model's chat template renders their prompt (the
    tokenizer is loaded, not the model). The task source and reward configuration are not used by DPO."""
    problems = dpo_hyperparameter_problems(run.hyperparameters)
    config_problems = preference_config_problems(run.preference_config)
    if config_problems:
        return problems + config_problems
    pairs = training_run_preference_pairs(run)
    pair_problems = _pair_problems(pairs, merged_preference_config(run.preference_config)["heldout_share"])
    problems += pair_problems
    if model_path is not None and not pair_problems and pairs.train:
        problems += chat_template_problems(str(model_path), pairs.train[0]["prompt"])
    return problems


def dpo_run_spec(run: Any, *, model_path: Path | None, output_dir: str, resume: bool) -> DPOSpec:
    """The spec the training process reads; the pairs are built again now, from the judgments as they are."""
    pairs = training_run_preference_pairs(run)
    config = merged_preference_config(run.preference_config)
    problems = _pair_problems(pairs, config["heldout_share"])
    if problems or model_path is None:
        raise ValueError("; ".join(problems) or "the base model path does not exist")
    return DPOSpec(
        model_path=str(model_path),
        train=pairs.train,
        heldout=pairs.heldout,
        pair_summary=pairs.summary(),
        output_dir=output_dir,
        hyperparameters=merged_dpo_hyperparameters(run.hyperparameters),
        device=run.device,
        resume=resume,
        run_id=run.pk,
        attempt=run.attempt,
        deepspeed_config=run.deepspeed_config,
        max_questions=config["max_questions"],
    )

"""Exports: every format, pseudonyms, atomic files, and the CSV round trip through preference_stats."""

from __future__ import annotations

import csv
import io
import json

import pyarrow.parquet as pq
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation import exports
from annotation.models import AnnotatorFlag, Judgment
from annotation.selectors_stats import EXPORT_COLUMNS, annotator_pseudonym
from tests import factories
from tests.factories_stats import study_with_judgments

pytestmark = pytest.mark.django_db


@pytest.fixture
def annotators(alice, bob, charlie):
    return [alice, bob, charlie, factories.UserFactory(username="dora")]


@pytest.fixture
def study(annotators):
    return study_with_judgments(annotators=annotators, tasks=8, per_comparison=3)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_the_exported_csv_gives_exactly_the_figures_of_the_study(study, annotators, tmp_path):
    AnnotatorFlag.objects.create(study=study, annotator=annotators[0], reason="failed gold")
    path = tmp_path / "judgments.csv"
    run("export_judgments", "--study", study.slug, "--format", "csv", "-o", str(path))
    for extra in ([], ["--reference", "ours"], ["--exclude-flagged"]):
        from_db = json.loads(run("preference_stats", "--study", study.slug, "--json", *extra))
        from_csv = json.loads(run("preference_stats", "--from-csv", str(path), "--json", *extra))
        assert from_csv == from_db
        assert set(from_db) == {"pairs", "ratings", "agreement", "position_bias", "domains", "sequential"}
        for row in from_db["sequential"]:
            assert {"n", "cs_low", "cs_high", "e_value", "decided"} <= set(row)
    flagged = json.loads(run("preference_stats", "--study", study.slug, "--json", "--exclude-flagged"))
    everyone = json.loads(run("preference_stats", "--study", study.slug, "--json"))
    assert sum(r["n"] for r in flagged["pairs"]) < sum(r["n"] for r in everyone["pairs"])


def test_csv_has_one_row_per_judgment_with_pseudonymous_annotators(study, alice, tmp_path):
    path = tmp_path / "j.csv"
    assert "72 rows" in run("export_judgments", "--study", study.slug, "--format", "csv", "-o", str(path))
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == Judgment.objects.filter(comparison__study=study).count() == 72
    assert tuple(rows[0]) == EXPORT_COLUMNS
    assert "alice" not in path.read_text()
    assert annotator_pseudonym(alice.pk) in {r["annotator"] for r in rows}
    first = Judgment.objects.select_related("assignment", "comparison__candidate_a__system").order_by("id").first()
    assert rows[0]["choice"] == first.choice
    assert rows[0]["system_a"] == first.comparison.candidate_a.system.name
    assert json.loads(rows[0]["criteria"]) == first.criteria


def test_real_usernames_only_when_asked(study, tmp_path):
    path = tmp_path / "j.jsonl"
    run("export_judgments", "--study", study.slug, "--format", "jsonl", "-o", str(path), "--real-usernames")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert {r["annotator"] for r in records} <= {"alice", "bob", "charlie", "dora"}
    assert len(records) == 72
    assert records[0]["criteria"] == {"Relevance": records[0]["choice"]}


def test_parquet_holds_the_same_rows_as_csv(study, tmp_path):
    run("export_judgments", "--study", study.slug, "--format", "parquet", "-o", str(tmp_path / "j.parquet"))
    run("export_judgments", "--study", study.slug, "--format", "csv", "-o", str(tmp_path / "j.csv"))
    table = pq.read_table(tmp_path / "j.parquet")
    assert table.column_names == list(EXPORT_COLUMNS)
    rows = list(csv.DictReader((tmp_path / "j.csv").open()))
    assert table.column("choice").to_pylist() == [r["choice"] for r in rows]
    assert table.column("annotator").to_pylist() == [r["annotator"] for r in rows]


def test_a_failed_export_leaves_no_file(study, tmp_path, monkeypatch):
    def broken(**kwargs):
        yield b"judgment_id,study\n1,half"
        raise RuntimeError("database went away")

    monkeypatch.setattr(exports, "export_chunks", broken)
    target = tmp_path / "j.csv"
    with pytest.raises(RuntimeError):
        exports.export_to_file(study=study, fmt="csv", path=target)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_clear_errors(study, tmp_path):
    with pytest.raises(CommandError, match="no study"):
        run("export_judgments", "--study", "nope", "--format", "csv", "-o", str(tmp_path / "x.csv"))
    with pytest.raises(CommandError, match="does not exist"):
        run("export_judgments", "--study", study.slug, "--format", "csv", "-o", str(tmp_path / "no" / "x.csv"))
    with pytest.raises(CommandError, match="no study"):
        run("preference_stats", "--study", "nope")
    with pytest.raises(CommandError, match="reference system"):
        run("preference_stats", "--study", study.slug, "--reference", "gpt-9")
    with pytest.raises(CommandError, match="at least 1000"):
        run("preference_stats", "--study", study.slug, "--rounds", "10")
    assert list(tmp_path.iterdir()) == []


def test_a_csv_without_the_needed_columns_is_refused(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("item,choice\n1,a\n")
    with pytest.raises(CommandError, match="missing column"):
        run("preference_stats", "--from-csv", str(path))


def test_text_report_reads_like_the_papers_human_study(study):
    text = run("preference_stats", "--study", study.slug, "--reference", "o3-mini")
    assert "ours vs o3-mini: win " in text
    assert " · tie " in text
    assert " · margin " in text
    assert "Bradley–Terry" in text
    assert "Krippendorff" in text
    # Per annotator: the position habit and, beside it, the tie share.
    as_json = json.loads(run("preference_stats", "--study", study.slug, "--json"))
    for row in (r for r in as_json["position_bias"] if r["annotator"] is not None):
        share = "n/a" if row["left_share"] is None else f"{100 * row['left_share']:.1f}%"
        assert f"  {row['annotator']}: chose left {share} of {row['n']} decisive" in text
        assert f" · ties {100 * row['tie_share']:.1f}% of {row['judgments']}" in text


def majority_study(annotators):
    """Three comparisons: a clear majority for ours, a tie majority, and a 1–1 split."""
    study = study_with_judgments(annotators=annotators[:2], systems=("ours", "base"), strengths=(0, 0), tasks=3)
    comparisons = list(study.comparisons.order_by("id"))
    Judgment.objects.filter(comparison__study=study).delete()
    plan = [("a", "a"), ("tie", "tie"), ("a", "b")]
    for comparison, choices in zip(comparisons, plan, strict=True):
        for user, choice in zip(annotators, choices, strict=False):
            Judgment.objects.create(
                assignment=comparison.assignments.get(annotator=user),
                comparison=comparison,
                annotator=user,
                choice=choice,
                seconds=3,
            )
    return study, comparisons


def test_trl_keeps_majorities_and_drops_ties_and_splits(annotators, tmp_path):
    study, comparisons = majority_study(annotators)
    path = tmp_path / "prefs.jsonl"
    out = run("export_judgments", "--study", study.slug, "--format", "trl", "-o", str(path))
    assert "1 rows (1 ties and 1 splits dropped)" in out
    (record,) = [json.loads(line) for line in path.read_text().splitlines()]
    winner = comparisons[0].candidate_a
    assert record["system_chosen"] == winner.system.name == "ours"
    assert record["system_rejected"] == "base"
    assert record["votes"] == 2
    assert record["prompt"] == winner.task.masked_task
    assert record["chosen"] == "\n".join(winner.questions)  # one question per line, as the questioner writes them


@pytest.mark.slow
def test_trl_file_loads_with_datasets_and_dpo_trainer_accepts_it(annotators, tmp_path):
    datasets = pytest.importorskip("datasets")
    trl = pytest.importorskip("trl")
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    study = study_with_judgments(annotators=annotators, tasks=4)
    path = tmp_path / "prefs.jsonl"
    run("export_judgments", "--study", study.slug, "--format", "trl", "-o", str(path))
    dataset = datasets.load_dataset("json", data_files=str(path), split="train")
    assert {"prompt", "chosen", "rejected", "system_chosen", "system_rejected", "votes"} <= set(dataset.column_names)
    assert len(dataset) > 0

    words = sorted({w for r in dataset for f in ("prompt", "chosen", "rejected") for w in r[f].split()})
    vocab = {"<pad>": 0, "<unk>": 1, "<eos>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    raw = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>")
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=0,
        eos_token_id=2,
    )
    model = LlamaForCausalLM(config)
    args = trl.DPOConfig(output_dir=str(tmp_path / "dpo"), report_to=[], max_steps=0, use_cpu=True)
    reference = LlamaForCausalLM(config)  # given, so nothing is looked up on a model hub
    trainer = trl.DPOTrainer(
        model=model, ref_model=reference, args=args, train_dataset=dataset, processing_class=tokenizer
    )
    first = trainer.train_dataset[0]
    # DPOTrainer tokenised our columns into its own: the file is usable as it is.
    assert {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(first)
    assert len(first["chosen_ids"]) > 0

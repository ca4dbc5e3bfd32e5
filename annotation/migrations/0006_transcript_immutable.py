"""A human transcript (an answer set of an `answer` study) is immutable once stored, like a judgment: it is
evidence the fidelity report and the outlines from human answers rest on. A trigger, so no code path (admin,
shell, bulk ops) can bypass it; the item a transcript answers must belong to the transcript's candidate."""

from __future__ import annotations

from django.db import migrations

PG_FORWARD = [
    """
    CREATE OR REPLACE FUNCTION pig_transcript_immutable() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'human transcripts are immutable once stored'
            USING ERRCODE = 'integrity_constraint_violation';
    END; $$ LANGUAGE plpgsql;
    """,
    """
    CREATE TRIGGER pig_transcript_immutable BEFORE UPDATE ON annotation_humantranscript
    FOR EACH ROW EXECUTE FUNCTION pig_transcript_immutable();
    """,
    """
    CREATE OR REPLACE FUNCTION pig_transcript_same_candidate() RETURNS trigger AS $$
    BEGIN
        IF (SELECT candidate_id FROM annotation_answeritem WHERE id = NEW.item_id) <> NEW.candidate_id THEN
            RAISE EXCEPTION 'a transcript must answer its own candidate''s item'
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    END; $$ LANGUAGE plpgsql;
    """,
    """
    CREATE TRIGGER pig_transcript_same_candidate BEFORE INSERT ON annotation_humantranscript
    FOR EACH ROW EXECUTE FUNCTION pig_transcript_same_candidate();
    """,
]
PG_BACKWARD = [
    "DROP TRIGGER IF EXISTS pig_transcript_immutable ON annotation_humantranscript;",
    "DROP FUNCTION IF EXISTS pig_transcript_immutable();",
    "DROP TRIGGER IF EXISTS pig_transcript_same_candidate ON annotation_humantranscript;",
    "DROP FUNCTION IF EXISTS pig_transcript_same_candidate();",
]
SQLITE_FORWARD = [
    """
    CREATE TRIGGER pig_transcript_immutable BEFORE UPDATE ON annotation_humantranscript
    BEGIN
        SELECT RAISE(ABORT, 'human transcripts are immutable once stored');
    END;
    """,
    """
    CREATE TRIGGER pig_transcript_same_candidate BEFORE INSERT ON annotation_humantranscript
    FOR EACH ROW WHEN (SELECT candidate_id FROM annotation_answeritem WHERE id = NEW.item_id) <> NEW.candidate_id
    BEGIN
        SELECT RAISE(ABORT, 'a transcript must answer its own candidate''s item');
    END;
    """,
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS pig_transcript_immutable;",
    "DROP TRIGGER IF EXISTS pig_transcript_same_candidate;",
]


def _run(statements_by_vendor: dict[str, list[str]]):
    def run(apps, schema_editor) -> None:
        for sql in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("annotation", "0005_answer_studies")]

    operations = [
        migrations.RunPython(
            _run({"postgresql": PG_FORWARD, "sqlite": SQLITE_FORWARD}),
            _run({"postgresql": PG_BACKWARD, "sqlite": SQLITE_BACKWARD}),
        )
    ]

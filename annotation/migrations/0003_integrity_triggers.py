"""Database-level invariants that a CHECK constraint cannot express across rows:

* a comparison's two candidates answer the comparison's own task;
* a judgment is immutable once stored.
They are triggers so that no code path (admin, shell, bulk ops) can bypass them."""

from __future__ import annotations

from django.db import migrations

PG_FORWARD = [
    """
    CREATE OR REPLACE FUNCTION pig_comparison_same_task() RETURNS trigger AS $$
    BEGIN
        IF (SELECT task_id FROM annotation_candidate WHERE id = NEW.candidate_a_id) <> NEW.task_id
           OR (SELECT task_id FROM annotation_candidate WHERE id = NEW.candidate_b_id) <> NEW.task_id THEN
            RAISE EXCEPTION 'comparison candidates must belong to the comparison task'
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    END; $$ LANGUAGE plpgsql;
    """,
    """
    CREATE TRIGGER pig_comparison_same_task BEFORE INSERT OR UPDATE ON annotation_comparison
    FOR EACH ROW EXECUTE FUNCTION pig_comparison_same_task();
    """,
    """
    CREATE OR REPLACE FUNCTION pig_judgment_immutable() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'judgments are immutable once submitted'
            USING ERRCODE = 'integrity_constraint_violation';
    END; $$ LANGUAGE plpgsql;
    """,
    """
    CREATE TRIGGER pig_judgment_immutable BEFORE UPDATE ON annotation_judgment
    FOR EACH ROW EXECUTE FUNCTION pig_judgment_immutable();
    """,
]
PG_BACKWARD = [
    "DROP TRIGGER IF EXISTS pig_comparison_same_task ON annotation_comparison;",
    "DROP FUNCTION IF EXISTS pig_comparison_same_task();",
    "DROP TRIGGER IF EXISTS pig_judgment_immutable ON annotation_judgment;",
    "DROP FUNCTION IF EXISTS pig_judgment_immutable();",
]

_SQLITE_SAME_TASK = """
    CREATE TRIGGER pig_comparison_same_task_{op} BEFORE {OP} ON annotation_comparison
    FOR EACH ROW WHEN
        (SELECT task_id FROM annotation_candidate WHERE id = NEW.candidate_a_id) <> NEW.task_id
        OR (SELECT task_id FROM annotation_candidate WHERE id = NEW.candidate_b_id) <> NEW.task_id
    BEGIN
        SELECT RAISE(ABORT, 'comparison candidates must belong to the comparison task');
    END;
"""
SQLITE_FORWARD = [
    _SQLITE_SAME_TASK.format(op="ins", OP="INSERT"),
    _SQLITE_SAME_TASK.format(op="upd", OP="UPDATE"),
    """
    CREATE TRIGGER pig_judgment_immutable BEFORE UPDATE ON annotation_judgment
    BEGIN
        SELECT RAISE(ABORT, 'judgments are immutable once submitted');
    END;
    """,
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS pig_comparison_same_task_ins;",
    "DROP TRIGGER IF EXISTS pig_comparison_same_task_upd;",
    "DROP TRIGGER IF EXISTS pig_judgment_immutable;",
]


def _run(statements_by_vendor: dict[str, list[str]]):
    def run(apps, schema_editor) -> None:
        for sql in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("annotation", "0002_initial")]

    operations = [
        migrations.RunPython(
            _run({"postgresql": PG_FORWARD, "sqlite": SQLITE_FORWARD}),
            _run({"postgresql": PG_BACKWARD, "sqlite": SQLITE_BACKWARD}),
        )
    ]

"""Drop three single-column indexes of SendLog that every insert and outcome write paid for:
app_id and smtp_server_id are served by the composite indexes (app, id) and
(smtp_server, sent_at) (also for MySQL's foreign keys), and claims now look rows up by id,
not by claim_token.

Done by name rather than with AlterField, which on SQLite copies the whole table (three
times), a long lock on a large audit log."""

import django.db.models.deletion
from django.db import migrations, models

TABLE = "hub_sendlog"
COLUMNS = ("app_id", "smtp_server_id", "claim_token")


def _single_column_indexes(schema_editor) -> dict[str, str]:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, TABLE)
    return {name: info["columns"][0] for name, info in constraints.items()
            if info["index"] and not info["unique"] and not info["primary_key"] and not info["foreign_key"]
            and len(info["columns"]) == 1 and info["columns"][0] in COLUMNS}


def drop_indexes(apps, schema_editor):
    quote = schema_editor.quote_name
    on_table = f" ON {quote(TABLE)}" if schema_editor.connection.vendor == "mysql" else ""
    for name in _single_column_indexes(schema_editor):
        schema_editor.execute(f"DROP INDEX {quote(name)}{on_table}")


def create_indexes(apps, schema_editor):
    quote = schema_editor.quote_name
    present = set(_single_column_indexes(schema_editor).values())
    for column in COLUMNS:
        if column not in present:
            schema_editor.execute(f"CREATE INDEX {quote(f'{TABLE}_{column}_idx')} ON {quote(TABLE)} ({quote(column)})")


class Migration(migrations.Migration):

    dependencies = [
        ('hub', '0004_delivery_wakeup'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_indexes, create_indexes)],
            state_operations=[
                migrations.AlterField(
                    model_name='sendlog',
                    name='app',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT,
                                            related_name='send_logs', to='hub.app', verbose_name='app'),
                ),
                migrations.AlterField(
                    model_name='sendlog',
                    name='claim_token',
                    field=models.CharField(blank=True, editable=False, max_length=32),
                ),
                migrations.AlterField(
                    model_name='sendlog',
                    name='smtp_server',
                    field=models.ForeignKey(blank=True, db_index=False, null=True,
                                            on_delete=django.db.models.deletion.SET_NULL, related_name='send_logs',
                                            to='hub.smtpserver', verbose_name='SMTP server'),
                ),
            ],
        ),
    ]

from django.db import migrations


def add_schedule(apps, schema_editor):
    # Every 5 minutes: each enabled bounce mailbox once (hub.inbound.imap.poll_all; nothing to
    # do without one). Admins change the interval under "Scheduled tasks".
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name="inbound-imap-poll",
        defaults={"func": "hub.inbound.tasks.poll_mailboxes", "schedule_type": "I", "minutes": 5, "repeats": -1},
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="inbound-imap-poll").delete()


class Migration(migrations.Migration):

    dependencies = [
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
        ("inbound", "0001_initial"),
    ]

    operations = [migrations.RunPython(add_schedule, remove_schedule)]

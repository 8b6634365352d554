"""Delivery tasks drain the outbox; one flag row says whether a drain is already on its way
(see hub.models.DeliveryWakeup)."""

from django.db import migrations, models


def create_flag(apps, schema_editor):
    apps.get_model("hub", "DeliveryWakeup").objects.get_or_create(pk=1)


class Migration(migrations.Migration):

    dependencies = [
        ('hub', '0003_sendlog_admin_indexes'),
    ]

    operations = [
        migrations.CreateModel(
            name='DeliveryWakeup',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('requested_at', models.DateTimeField(blank=True, null=True)),
            ],
        ),
        migrations.RunPython(create_flag, migrations.RunPython.noop),
    ]

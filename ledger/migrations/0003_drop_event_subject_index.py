# Nothing reads the outbox by subject; the index only cost every audited write.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0002_log_head_and_append_only_triggers"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="event",
            name="ledger_event_subject",
        ),
    ]

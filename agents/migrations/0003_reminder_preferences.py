from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0002_routing_order"),
    ]

    operations = [
        migrations.AddField(
            model_name="agentprofile",
            name="reminder_mode",
            field=models.CharField(
                choices=[
                    ("every_message", "On every new message"),
                    ("after_first_message", "When a customer waits for a reply"),
                    ("off", "Off"),
                ],
                default="every_message",
                max_length=24,
            ),
        ),
        migrations.AddField(
            model_name="agentprofile",
            name="reminder_seconds",
            field=models.PositiveSmallIntegerField(default=60),
        ),
    ]

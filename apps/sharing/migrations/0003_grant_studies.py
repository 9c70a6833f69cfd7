from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("imaging", "0001_initial"),
        ("sharing", "0002_grant_scope_links_usage"),
    ]

    operations = [
        migrations.AddField(
            model_name="grant",
            name="studies",
            field=models.ManyToManyField(blank=True, help_text="Named studies of the case; none = the whole case.",
                                         related_name="grants", to="imaging.study"),
        ),
    ]

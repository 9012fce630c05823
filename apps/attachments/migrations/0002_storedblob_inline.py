from django.db import migrations, models


def no_compression(apps, schema_editor):
    """Ciphertext does not compress: PostgreSQL stores it out of line without trying
    (``EXTERNAL`` rather than ``EXTENDED``, which would spend CPU on every row for nothing)."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "ALTER TABLE attachments_storedblob ALTER COLUMN inline SET STORAGE EXTERNAL"
        )


class Migration(migrations.Migration):
    dependencies = [("attachments", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="storedblob",
            name="inline",
            field=models.BinaryField(
                blank=True, help_text="ciphertext, when kept in the row", null=True
            ),
        ),
        migrations.RunPython(no_compression, migrations.RunPython.noop, elidable=False),
    ]

import django.contrib.postgres.operations
from django.db import migrations


class Migration(migrations.Migration):
    """Edit distance (levenshtein) for typo-tolerant name search on PostgreSQL (no-op elsewhere)."""

    dependencies = [("directory", "0001_initial")]

    operations = [django.contrib.postgres.operations.CreateExtension("fuzzystrmatch")]

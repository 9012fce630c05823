"""Full-text mail search on PostgreSQL (apps/mailbox/search.py); nothing on other databases.

- ``mssweb_fr``: the French configuration (Snowball stemming, French stop words) with accents
  folded first (``unaccent``), so "Élevés" and "eleve" meet on the lexeme "elev".
- ``mssweb_message_document(subject, from_name, from_address, text_body)``: what is searched
  in a message: subject, sender name, the local part of the sender address and the first
  100,000 characters of the text body, with ``.@-_/`` read as spaces ("irm-2024",
  "m.dupont@…" give separate words, as the query side does). The 100,000-character bound keeps
  every document under tsvector's 1 MB limit: an unbounded one could make a delivery fail.
- ``mailbox_message.search_document``: that document, a stored generated column. It is not a
  model field (Django never names it, so it costs nothing to the ORM); PostgreSQL computes it
  when a message is written and only when one of those four columns changes (not when a flag
  does). Stored rather than an expression index because a search must never recompute it: a
  document costs ~0.3 ms to compute for 3 KB of text, and with an expression index the planner,
  which charges that cost to an index scan and a bitmap scan alike, picked "every message of
  the mailbox, recomputed" for common words (0.7 s for 3,000 messages).
  Adding the column rewrites the table under an exclusive lock: on a large existing table, run
  this migration in a maintenance window.
- ``mssweb_fold(text)``: lower(unaccent(text)), IMMUTABLE (unaccent itself is only STABLE
  because its dictionary could change; the wrapper names the dictionary).
- Indexes:
  - ``mailbox_message_fts``: GIN on (mailbox_id, search_document) (btree_gin), one index for
    "this mailbox and these words": rare words;
  - ``mailbox_message_mailbox_date``: (mailbox_id, date DESC, id DESC), newest first across
    folders: for common words (or filters alone) the planner reads messages newest first and
    stops at the page's fiftieth match instead of gathering tens of thousands of them;
  - trigram indexes (pg_trgm) on the folded sender (name and address: the From filter), the
    folded recipients (name and whole address: the To filter; name and local part: the words
    of the query) and the folded attachment names.
  A model would be the better home for the btree index (``models.Index(fields=["mailbox",
  "-date", "-id"])``); it is here because this migration may not touch models.py.

The indexes are built CONCURRENTLY (the migration is not atomic) so that deliveries go on while
they build on a large table. Every statement is idempotent: a failed run can be re-run.
Reversing drops what this migration made but leaves the extensions (others may use them).
"""

from django.db import migrations

FORWARD = [
    "CREATE EXTENSION IF NOT EXISTS unaccent",
    "CREATE EXTENSION IF NOT EXISTS btree_gin",
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    """
    CREATE OR REPLACE FUNCTION mssweb_unaccent(text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT public.unaccent('public.unaccent'::regdictionary, $1) $$
    """,
    """
    CREATE OR REPLACE FUNCTION mssweb_fold(text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT lower(public.mssweb_unaccent($1)) $$
    """,
    """
    DO $$
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = 'mssweb_fr') THEN
            CREATE TEXT SEARCH CONFIGURATION public.mssweb_fr (COPY = pg_catalog.french);
            ALTER TEXT SEARCH CONFIGURATION public.mssweb_fr
                ALTER MAPPING FOR hword, hword_part, word WITH public.unaccent, french_stem;
        END IF;
    END
    $$
    """,
    """
    CREATE OR REPLACE FUNCTION mssweb_message_document(
        subject text, from_name text, from_address text, body text
    ) RETURNS tsvector
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    AS $$
    BEGIN
        RETURN to_tsvector('public.mssweb_fr'::regconfig, translate(
            coalesce(subject, '') || ' ' || coalesce(from_name, '') || ' '
            || split_part(coalesce(from_address, ''), '@', 1) || ' '
            || left(coalesce(body, ''), 100000),
            '.@-_/', '     '));
    END
    $$
    """,
    """
    ALTER TABLE mailbox_message ADD COLUMN IF NOT EXISTS search_document tsvector
    GENERATED ALWAYS AS (mssweb_message_document(subject, from_name, from_address, text_body))
    STORED
    """,
    """
    CREATE INDEX CONCURRENTLY IF NOT EXISTS mailbox_message_fts ON mailbox_message
    USING gin (mailbox_id, search_document)
    """,
    """
    CREATE INDEX CONCURRENTLY IF NOT EXISTS mailbox_message_mailbox_date ON mailbox_message
    (mailbox_id, date DESC, id DESC)
    """,
    """
    CREATE INDEX CONCURRENTLY IF NOT EXISTS mailbox_message_from_trgm ON mailbox_message
    USING gin (mssweb_fold(from_name || ' ' || from_address) gin_trgm_ops)
    """,
    """
    CREATE INDEX CONCURRENTLY IF NOT EXISTS mailbox_recipient_address_trgm ON mailbox_recipient
    USING gin (mssweb_fold(name || ' ' || address) gin_trgm_ops)
    """,
    """
    CREATE INDEX CONCURRENTLY IF NOT EXISTS mailbox_recipient_who_trgm ON mailbox_recipient
    USING gin (mssweb_fold(name || ' ' || split_part(address, '@', 1)) gin_trgm_ops)
    """,
    """
    CREATE INDEX CONCURRENTLY IF NOT EXISTS mailbox_attachment_name_trgm ON mailbox_attachment
    USING gin (mssweb_fold(filename) gin_trgm_ops)
    """,
]

BACKWARD = [
    "DROP INDEX CONCURRENTLY IF EXISTS mailbox_attachment_name_trgm",
    "DROP INDEX CONCURRENTLY IF EXISTS mailbox_recipient_who_trgm",
    "DROP INDEX CONCURRENTLY IF EXISTS mailbox_recipient_address_trgm",
    "DROP INDEX CONCURRENTLY IF EXISTS mailbox_message_from_trgm",
    "DROP INDEX CONCURRENTLY IF EXISTS mailbox_message_mailbox_date",
    "DROP INDEX CONCURRENTLY IF EXISTS mailbox_message_fts",
    "ALTER TABLE mailbox_message DROP COLUMN IF EXISTS search_document",
    "DROP FUNCTION IF EXISTS mssweb_message_document(text, text, text, text)",
    "DROP TEXT SEARCH CONFIGURATION IF EXISTS public.mssweb_fr",
    "DROP FUNCTION IF EXISTS mssweb_fold(text)",
    "DROP FUNCTION IF EXISTS mssweb_unaccent(text)",
]


def _execute(schema_editor, statements):
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in statements:  # one by one: CONCURRENTLY refuses a transaction block
        schema_editor.execute(statement, params=None)


def forward(apps, schema_editor):
    _execute(schema_editor, FORWARD)


def backward(apps, schema_editor):
    _execute(schema_editor, BACKWARD)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("mailbox", "0004_mailbox_quota")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]

"""Master keys: parsing, development fallback, production refusal, rotation and its command."""

import io
import stat

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from apps.attachments import conf
from apps.attachments.models import StoredBlob
from apps.attachments.services import (
    StorageKeyRotationIncomplete,
    blob_bytes,
    blob_store,
    storage_key_rotate,
)
from tests.attachments.conftest import KEY_A, KEY_B, b64

pytestmark = pytest.mark.django_db


# --- parse_storage_keys --------------------------------------------------------------------------


def test_parse_storage_keys_reads_several_keys():
    text = f" k2025:{b64(KEY_A)} ,\n k2026.b:{b64(KEY_B)},"
    assert conf.parse_storage_keys(text) == {"k2025": KEY_A, "k2026.b": KEY_B}


def test_parse_storage_keys_accepts_urlsafe_base64():
    key = b"\xfb\xff" * 16
    urlsafe = "k:" + b64(key).replace("+", "-").replace("/", "_")
    assert conf.parse_storage_keys(urlsafe) == {"k": key}


def test_parse_storage_keys_of_nothing_is_empty():
    assert conf.parse_storage_keys("") == {}
    assert conf.parse_storage_keys("  ,  ") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b64(KEY_A), "expected KEY_ID:BASE64_KEY"),
        ("k:", "expected KEY_ID:BASE64_KEY"),
        (f"bad id:{b64(KEY_A)}", "key id is 1 to 32 characters"),
        (f"{'k' * 33}:{b64(KEY_A)}", "key id is 1 to 32 characters"),
        (f"k:{b64(KEY_A)},k:{b64(KEY_B)}", "appears twice"),
        ("k:not*base64!", "not valid base64"),
        (f"k:{b64(KEY_A)[:-1]}", "not valid base64"),
        (f"k:{b64(KEY_A[:16])}", "must be 32 random bytes, not 16"),
    ],
)
def test_parse_storage_keys_explains_mistakes_without_quoting_keys(text, message):
    with pytest.raises(ImproperlyConfigured, match=message) as excinfo:
        conf.parse_storage_keys(text)
    assert b64(KEY_A)[:12] not in str(excinfo.value)


# --- which key ------------------------------------------------------------------------------------


def test_debug_without_keys_uses_a_dev_key_kept_in_var(settings, tmp_path, blob_root):
    settings.STORAGE_KEYS = {}
    settings.STORAGE_ACTIVE_KEY = ""
    settings.VAR_DIR = tmp_path
    settings.DEBUG, settings.TESTING = True, False
    keys = conf.storage_keys()
    assert list(keys) == ["dev"]
    path = tmp_path / "dev-storage-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert conf.storage_keys() == keys  # created once, then reused
    assert conf.active_key_id() == "dev"
    blob = blob_store(source=io.BytesIO(b"dev"))
    assert blob.key_id == "dev"
    assert blob_bytes(blob) == b"dev"


def test_production_without_keys_refuses_at_first_use(settings, blob_root):
    settings.STORAGE_KEYS = {}
    settings.DEBUG, settings.TESTING = False, False
    with pytest.raises(ImproperlyConfigured, match="MSSWEB_STORAGE_KEYS"):
        blob_store(source=io.BytesIO(b"x"))
    assert not StoredBlob.objects.exists()


def test_several_keys_need_an_active_one(settings):
    settings.STORAGE_KEYS = {"a": KEY_A, "b": KEY_B}
    settings.STORAGE_ACTIVE_KEY = ""
    with pytest.raises(ImproperlyConfigured, match="MSSWEB_STORAGE_ACTIVE_KEY"):
        conf.active_key_id()
    settings.STORAGE_ACTIVE_KEY = "c"
    with pytest.raises(ImproperlyConfigured, match="not among"):
        conf.active_key_id()
    settings.STORAGE_ACTIVE_KEY = "b"
    assert conf.active_key_id() == "b"


def test_a_single_key_is_active_by_default(settings):
    settings.STORAGE_KEYS = {"only": KEY_A}
    settings.STORAGE_ACTIVE_KEY = ""
    assert conf.active_key_id() == "only"


# --- rotation -------------------------------------------------------------------------------------


def test_rotation_rewraps_then_the_old_key_can_go(settings, blob_root):
    contents = [b"first", b"second" * 10_000, b""]
    blobs = [blob_store(source=io.BytesIO(c)) for c in contents]
    files_before = {b.name: (blob_root / b.name).read_bytes() for b in blobs}
    settings.STORAGE_KEYS = {"a": KEY_A, "b": KEY_B}
    settings.STORAGE_ACTIVE_KEY = "b"

    assert storage_key_rotate(to_key_id="b", batch_size=2) == 3
    assert storage_key_rotate(to_key_id="b") == 0  # idempotent

    settings.STORAGE_KEYS = {"b": KEY_B}
    for blob, content in zip(blobs, contents, strict=True):
        blob.refresh_from_db()
        assert blob.key_id == "b"
        assert blob_bytes(blob) == content
        assert (blob_root / blob.name).read_bytes() == files_before[blob.name]  # files untouched


def test_rotation_to_an_unknown_key_is_refused(blob_root):
    with pytest.raises(ImproperlyConfigured, match="'zz'"):
        storage_key_rotate(to_key_id="zz")


def test_rotation_rewraps_what_it_can_and_names_the_rest(settings, blob_root):
    good = blob_store(source=io.BytesIO(b"good"))
    settings.STORAGE_KEYS = {"old": KEY_B}
    settings.STORAGE_ACTIVE_KEY = "old"
    lost = blob_store(source=io.BytesIO(b"lost"))
    settings.STORAGE_KEYS = {"a": KEY_A, "c": KEY_B[::-1]}  # "old" is gone
    settings.STORAGE_ACTIVE_KEY = "c"

    with pytest.raises(StorageKeyRotationIncomplete) as excinfo:
        storage_key_rotate(to_key_id="c")
    assert excinfo.value.extra["rotated"] == 1
    assert excinfo.value.extra["failed_ids"] == [lost.pk]
    good.refresh_from_db()
    assert good.key_id == "c"
    assert blob_bytes(good) == b"good"
    lost.refresh_from_db()
    assert lost.key_id == "old"


def test_rotate_command_defaults_to_the_active_key_and_prints_counts(settings, blob_root):
    for content in (b"1", b"2"):
        blob_store(source=io.BytesIO(content))
    settings.STORAGE_KEYS = {"a": KEY_A, "b": KEY_B}
    settings.STORAGE_ACTIVE_KEY = "b"
    out = io.StringIO()
    call_command("rotate_storage_key", stdout=out)
    assert out.getvalue().splitlines() == [
        "Before: a: 2",
        "Re-wrapped under 'b': 2",
        "After: b: 2",
    ]
    assert set(StoredBlob.objects.values_list("key_id", flat=True)) == {"b"}

    out = io.StringIO()
    call_command("rotate_storage_key", "--to", "a", stdout=out)
    assert "Re-wrapped under 'a': 2" in out.getvalue()


def test_rotate_command_refuses_an_unknown_key(blob_root):
    with pytest.raises(CommandError, match="Unknown storage key id 'nope'"):
        call_command("rotate_storage_key", "--to", "nope", stdout=io.StringIO())


def test_rotate_command_fails_when_objects_are_left_behind(settings, blob_root):
    settings.STORAGE_KEYS = {"old": KEY_B}
    settings.STORAGE_ACTIVE_KEY = "old"
    lost = blob_store(source=io.BytesIO(b"lost"))
    settings.STORAGE_KEYS = {"a": KEY_A}
    settings.STORAGE_ACTIVE_KEY = "a"
    with pytest.raises(CommandError, match=f"Failed ids \\(first 100\\): {lost.pk}") as excinfo:
        call_command("rotate_storage_key", stdout=io.StringIO())
    assert excinfo.value.returncode == 1

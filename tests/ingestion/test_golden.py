"""Golden files: every ``fixtures/<case>.eml`` parses to exactly ``fixtures/<case>.json``.

To accept a deliberate change of the parser's output (then review the diff of the JSON files):

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/ingestion/test_golden.py
"""

import json
import os
from pathlib import Path

import pytest

from apps.ingestion.parse import parse_message

FIXTURES = Path(__file__).parent / "fixtures"
CASES = sorted(path.stem for path in FIXTURES.glob("*.eml"))
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def test_every_required_case_has_a_fixture():
    assert {
        "xdm-report",
        "plain-utf8",
        "html-newsletter-remote-images",
        "alternative-inline-cid",
        "attachments-rfc2231-rfc2047",
        "forwarded-rfc822",
        "urgent",
        "dsn",
        "mdn",
        "latin1-no-charset",
        "malformed-headers",
        "malformed-mime",
        "patient-headers",
    } <= set(CASES)


@pytest.mark.parametrize("case", CASES)
def test_parsing_matches_golden_json(case):
    parsed = parse_message((FIXTURES / f"{case}.eml").read_bytes()).to_dict()
    # What is compared is what JSON keeps: the dict must survive a round trip unchanged.
    assert json.loads(json.dumps(parsed)) == parsed
    expected_path = FIXTURES / f"{case}.json"
    if UPDATE:
        expected_path.write_text(
            json.dumps(parsed, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
    assert expected_path.exists(), f"missing {expected_path.name}: run with UPDATE_GOLDEN=1"
    assert parsed == json.loads(expected_path.read_text(encoding="utf-8"))

"""arq's job serializer: JSON data only, and a failed job's outcome stored as text."""

from __future__ import annotations

import json

import pytest
from arq.worker import JobExecutionFailed

from service.connections import deserialize_job, serialize_job


def test_a_job_payload_round_trips_as_json() -> None:
    payload = {"t": 1, "f": "ocr_pages", "a": ["id", 0, 40], "k": {}, "et": 1}
    assert deserialize_job(serialize_job(payload)) == payload


def test_a_failed_jobs_outcome_is_stored_as_its_text() -> None:
    # arq stores the outcome of an expired or undecodable job, an exception, with the same serializer.
    stored = json.loads(serialize_job({"s": False, "r": JobExecutionFailed("job expired")}))
    assert stored["r"] == "JobExecutionFailed: job expired"


def test_anything_else_that_is_not_json_is_refused() -> None:
    with pytest.raises(TypeError, match="only JSON data"):
        serialize_job({"a": [object()]})

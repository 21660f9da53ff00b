"""The OpenAPI description of the HTTP contract (shared/API.md), served at /openapi.json.

Written by hand rather than generated: the contract is the product, and this is where a client
generator or a fuzzer (tests/e2e/test_fuzz.py runs schemathesis against it) reads it.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.jobs.record import STATUSES

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}

JOB = {
    "type": "object",
    "required": [
        "id",
        "status",
        "progress",
        "message",
        "pages_done",
        "filename",
        "options",
        "cached",
        "attempt",
        "created_at",
        "links",
    ],
    "properties": {
        "id": {"type": "string"},
        "status": {"type": "string", "enum": list(STATUSES)},
        "progress": {"type": "integer", "minimum": 0, "maximum": 100},
        "message": {"type": "string"},
        "pages_total": {"type": ["integer", "null"]},
        "pages_done": {"type": "integer"},
        "filename": {"type": "string"},
        "options": {
            "type": "object",
            "properties": {
                "lang": {"type": "string"},
                "dpi": {"type": "integer"},
                "force_ocr": {"type": "boolean"},
                "pages": {"type": "string"},
                "priority": {"type": "string", "enum": ["normal", "low"]},
            },
        },
        "cached": {"type": "boolean"},
        "attempt": {"type": "integer"},
        "error": {"oneOf": [{"type": "null"}, ERROR["properties"]["error"]]},  # type: ignore[index]
        "created_at": {"type": "string"},
        "started_at": {"type": ["string", "null"]},
        "finished_at": {"type": ["string", "null"]},
        "links": {"type": "object"},
    },
}

JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
DETAIL = {"name": "detail", "in": "query", "schema": {"type": "string", "enum": ["words"]}}

WORD = {
    "type": "object",
    "required": ["text", "confidence", "bbox", "line", "block"],
    "properties": {
        "text": {"type": "string"},
        "confidence": {"type": ["integer", "null"], "minimum": 0, "maximum": 100},
        "bbox": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
        "line": {"type": "integer", "minimum": 1},
        "block": {"type": "integer", "minimum": 1},
    },
}

PAGE = {
    "type": "object",
    "required": ["number", "text", "source", "confidence", "rotation", "width", "height"],
    "properties": {
        "number": {"type": "integer", "minimum": 1},
        "text": {"type": "string"},
        "source": {"type": "string", "enum": ["text-layer", "ocr"]},
        "confidence": {"type": ["number", "null"]},
        "rotation": {"type": "integer", "enum": [0, 90, 180, 270]},
        "width": {"type": "number"},
        "height": {"type": "number"},
        "preprocessed": {"type": "boolean"},
        "words": {"type": "array", "items": WORD},
    },
}


def _errors(*statuses: int) -> dict[str, Any]:
    return {
        str(status): {
            "description": "error",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for status in statuses
    }


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


OPTIONS_FIELDS = {
    "lang": {"type": "string", "example": "eng"},
    "dpi": {"type": "integer", "minimum": 72, "maximum": 600},
    "force_ocr": {"type": "string", "enum": ["true", "false"]},
    "priority": {"type": "string", "enum": ["normal", "low"]},
    "webhook_url": {"type": "string", "format": "uri"},
    "pages": {"type": "string", "example": "1-3,7,10-", "description": "1-based pages and ranges; 10- is to the end"},
}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "ocr-service", "version": "1", "description": "Async OCR over HTTP with SSE progress."},
    "components": {
        "schemas": {"Error": ERROR, "Job": JOB, "Page": PAGE},
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
    "security": [{"bearer": []}, {}],
    "paths": {
        "/jobs": {
            "post": {
                "summary": "Submit a document",
                "parameters": [
                    {"name": "wait", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": 25}},
                    {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 200}},
                    *({"name": name, "in": "query", "schema": schema} for name, schema in OPTIONS_FIELDS.items()),
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["file"],
                                "properties": {"file": {"type": "string", "format": "binary"}, **OPTIONS_FIELDS},
                            }
                        },
                        "application/pdf": {"schema": {"type": "string", "format": "binary"}},
                        "image/png": {"schema": {"type": "string", "format": "binary"}},
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["url"],
                                "properties": {"url": {"type": "string", "format": "uri"}, **OPTIONS_FIELDS},
                            }
                        },
                    },
                },
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Job"}, "Cached, or finished within `wait`"),
                    "202": _json({"$ref": "#/components/schemas/Job"}, "Accepted"),
                    **_errors(400, 401, 409, 413, 415, 422, 429, 503),
                },
            },
            "get": {
                "summary": "The tenant's jobs, newest first",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "enum": list(STATUSES)},
                    },
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["jobs", "next"],
                            "properties": {
                                "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
                                "next": {"type": ["string", "null"]},
                            },
                        }
                    ),
                    **_errors(400, 401, 503),
                },
            },
        },
        "/jobs/{job_id}": {
            "get": {
                "parameters": [JOB_ID],
                "responses": {"200": _json({"$ref": "#/components/schemas/Job"}), **_errors(401, 404, 503)},
            },
            "delete": {
                "parameters": [JOB_ID],
                "responses": {
                    "202": _json({"$ref": "#/components/schemas/Job"}, "Cancelling"),
                    "204": {"description": "Deleted"},
                    **_errors(401, 404, 503),
                },
            },
        },
        "/jobs/{job_id}/result": {
            "get": {
                "parameters": [
                    JOB_ID,
                    {
                        "name": "format",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["json", "text", "pdf", "hocr", "alto"]},
                    },
                    DETAIL,
                ],
                "responses": {"200": {"description": "The result"}, **_errors(400, 401, 404, 409, 422, 503)},
            }
        },
        "/jobs/{job_id}/pages": {
            "get": {
                "summary": "The pages done so far, numbered above `after`, in page order",
                "parameters": [
                    JOB_ID,
                    {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                    DETAIL,
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["pages", "pages_total", "pages_done"],
                            "properties": {
                                "pages": {"type": "array", "items": {"$ref": "#/components/schemas/Page"}},
                                "pages_total": {"type": ["integer", "null"]},
                                "pages_done": {"type": "integer"},
                            },
                        }
                    ),
                    **_errors(400, 401, 404, 503),
                },
            }
        },
        "/jobs/{job_id}/pages/{number}": {
            "get": {
                "summary": "One page, as soon as it is done, while the job still runs",
                "parameters": [
                    JOB_ID,
                    {"name": "number", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}},
                    DETAIL,
                ],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Page"}),
                    **_errors(400, 401, 404, 409, 503),
                },
            }
        },
        "/jobs/{job_id}/events": {
            "get": {
                "parameters": [JOB_ID, {"name": "token", "in": "query", "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "text/event-stream"},
                    "204": {"description": "Nothing more"},
                    **_errors(400, 401, 404, 503),
                },
            }
        },
        "/events": {
            "get": {
                "parameters": [{"name": "token", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "text/event-stream"}, **_errors(400, 401, 503)},
            }
        },
        "/events/link": {"get": {"responses": {"200": _json({"type": "object"}), **_errors(401)}}},
        "/cache/stats": {
            "get": {
                "responses": {
                    "200": _json({"type": "object", "required": ["entries", "bytes", "hits", "misses", "hit_ratio"]}),
                    **_errors(401, 503),
                }
            }
        },
        "/cache": {"delete": {"responses": {"204": {"description": "Emptied"}, **_errors(401, 503)}}},
        "/healthz": {"get": {"security": [], "responses": {"200": _json({"type": "object"})}}},
        "/readyz": {
            "get": {"security": [], "responses": {"200": _json({"type": "object"}), "503": _json({"type": "object"})}}
        },
        "/metrics": {"get": {"security": [], "responses": {"200": {"description": "Prometheus text format"}}}},
    },
}


async def openapi_endpoint(request: Request) -> Response:
    return JSONResponse(SPEC)

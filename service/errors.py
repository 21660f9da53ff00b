"""The service's one exception tree. Every domain error is here, with its code and HTTP status.

    ServiceError                      code, HTTP status, message
    ├── BadRequest                    400 bad_request
    │   └── RefusedAddress            400 forbidden_address: a URL leads to a private or internal address
    ├── Unauthorized                  401 unauthorized
    ├── NotFound                      404 not_found
    ├── NotReady                      409 not_ready
    ├── DocumentError                 422: the document itself cannot be processed (never retried)
    │   ├── UnprocessableDocument     422 unprocessable_document (corrupt, empty, truncated)
    │   │   └── ImageTooLarge         422 image_too_large (refused from its header, before decoding)
    │   ├── EncryptedDocument         422 encrypted_document
    │   ├── TooManyPages              422 too_many_pages
    │   ├── TextTooLarge              422 text_too_large (a page's or the document's text is over its cap)
    │   ├── NoPagesSelected           422 no_pages_selected (a downloaded document has none of the pages
    │   │                                 `pages=` asked for; an upload is refused with 400 bad_request)
    │   ├── UnsupportedMediaType      415 unsupported_media_type
    │   └── PayloadTooLarge           413 payload_too_large
    ├── JobFailure                    409: a job ended without a result for a reason outside its document
    │   ├── DownloadFailed            409 download_failed (the document's URL did not give it)
    │   ├── DocumentMissing           409 document_missing (the stored document is gone)
    │   ├── TransientOcrError         409 ocr_failed (worth a retry with backoff; the job fails after MAX_TRIES)
    │   ├── OcrCancelled              409 cancelled (the job was cancelled while a page was in work)
    │   └── UnitFailed                409 unit_failed (a unit of work raised something unforeseen, or lost its
    │                                     queue entry, MAX_TRIES times)
    ├── IdempotencyConflict           409 idempotency_conflict (an Idempotency-Key reused for another submission)
    ├── TooManyJobs                   429 too_many_jobs (Retry-After)
    ├── TooManyStreams                429 too_many_streams (Retry-After): a tenant's open streams on one process
    └── ServiceUnavailable            503 service_unavailable (Retry-After)

    AnswerCut                         not a ServiceError: there is no answer left to give. An answer
                                      already begun cannot be finished (one of the above, or a lost
                                      Redis, while its body was sent): the connection is closed without
                                      the body's end, so the client sees it incomplete

Handlers at the edge turn any ServiceError into `{"error": {"code", "message"}}` with its status. A
worker records a failed job's error by its code; `/result` answers such a job from the same tree
(`failed_job_status`), so no table anywhere restates which code means what.
"""

from __future__ import annotations


class ServiceError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.retry_after_s = retry_after_s

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class BadRequest(ServiceError):
    status_code = 400
    code = "bad_request"


class RefusedAddress(BadRequest):
    code = "forbidden_address"


class Unauthorized(ServiceError):
    status_code = 401
    code = "unauthorized"


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class NotReady(ServiceError):
    status_code = 409
    code = "not_ready"


class DocumentError(ServiceError):
    status_code = 422
    code = "unprocessable_document"


class UnprocessableDocument(DocumentError):
    code = "unprocessable_document"


class ImageTooLarge(UnprocessableDocument):
    code = "image_too_large"


class EncryptedDocument(DocumentError):
    code = "encrypted_document"


class TooManyPages(DocumentError):
    code = "too_many_pages"


class TextTooLarge(DocumentError):
    code = "text_too_large"


class NoPagesSelected(DocumentError):
    code = "no_pages_selected"


class UnsupportedMediaType(DocumentError):
    status_code = 415
    code = "unsupported_media_type"


class PayloadTooLarge(DocumentError):
    status_code = 413
    code = "payload_too_large"


class JobFailure(ServiceError):
    status_code = 409
    code = "failed"


class DownloadFailed(JobFailure):
    code = "download_failed"


class DocumentMissing(JobFailure):
    code = "document_missing"


class TransientOcrError(JobFailure):
    code = "ocr_failed"


class OcrCancelled(JobFailure):
    code = "cancelled"


class UnitFailed(JobFailure):
    code = "unit_failed"


class IdempotencyConflict(ServiceError):
    status_code = 409
    code = "idempotency_conflict"


class TooManyJobs(ServiceError):
    status_code = 429
    code = "too_many_jobs"


class TooManyStreams(ServiceError):
    status_code = 429
    code = "too_many_streams"


class ServiceUnavailable(ServiceError):
    status_code = 503
    code = "service_unavailable"


class AnswerCut(Exception):
    """An answer whose status and first bytes went out and that cannot be finished: its result went
    while it was sent (its job deleted or expired), or Redis did. Ending its body normally would pass a
    short answer off as whole, so the app's edge (service/api/app.py) ends the connection instead."""


def error_class(code: str) -> type[ServiceError] | None:
    """The class of the tree that carries `code`, or None for a code the tree does not know."""
    pending: list[type[ServiceError]] = [ServiceError]
    while pending:
        cls = pending.pop()
        if cls.code == code and cls is not ServiceError:
            return cls
        pending.extend(cls.__subclasses__())
    return None


def failed_job_status(code: str) -> int:
    """What `/result` answers for a job that failed with `code`: 422 when the document was at fault
    (its upload would have been refused the same way), 409 for every other end without a result."""
    cls = error_class(code)
    return DocumentError.status_code if cls is not None and issubclass(cls, DocumentError) else JobFailure.status_code

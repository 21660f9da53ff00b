"""The domain exception tree and its mapping to the API's error body.

    ServiceError                      code, http status, message
    ├── BadRequest                    400 bad_request
    ├── Unauthorized                  401 unauthorized
    ├── NotFound                      404 not_found
    ├── NotReady                      409 not_ready
    ├── PayloadTooLarge               413 payload_too_large
    ├── UnsupportedMediaType          415 unsupported_media_type
    ├── DocumentError                 422: the document itself cannot be processed (never retried)
    │   ├── UnprocessableDocument     unprocessable_document (corrupt, empty, truncated)
    │   ├── EncryptedDocument         encrypted_document
    │   └── TooManyPages              too_many_pages
    ├── TooManyJobs                   429 too_many_jobs (Retry-After)
    └── ServiceUnavailable            503 service_unavailable (Retry-After)

    OcrCancelled                      the job was cancelled while a page was in work
    TransientOcrError                 a page failed for a reason worth retrying (Tesseract killed by the OS, timeout)

Handlers at the edge turn a ServiceError into `{"error": {"code", "message"}}`; the worker turns a
DocumentError into a `failed` job carrying the same code.
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


class Unauthorized(ServiceError):
    status_code = 401
    code = "unauthorized"


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class NotReady(ServiceError):
    status_code = 409
    code = "not_ready"


class PayloadTooLarge(ServiceError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status_code = 415
    code = "unsupported_media_type"


class DocumentError(ServiceError):
    status_code = 422
    code = "unprocessable_document"


class UnprocessableDocument(DocumentError):
    code = "unprocessable_document"


class EncryptedDocument(DocumentError):
    code = "encrypted_document"


class TooManyPages(DocumentError):
    code = "too_many_pages"


class TooManyJobs(ServiceError):
    status_code = 429
    code = "too_many_jobs"


class ServiceUnavailable(ServiceError):
    status_code = 503
    code = "service_unavailable"


class OcrCancelled(Exception):
    """Raised inside page work once its job has been cancelled."""


class TransientOcrError(Exception):
    """A page failed for a reason that may not happen again: worth a retry with backoff."""

    code = "ocr_failed"

"""The Python client of the service's HTTP API and the `ocr-service` command. It imports nothing of
the server: it speaks only the contract (../shared/API.md).

    from service.client import OcrClient, ApiError
"""

from service.client.http import ApiError, OcrClient

__all__ = ["ApiError", "OcrClient"]

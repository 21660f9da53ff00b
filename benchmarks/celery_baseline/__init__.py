"""The baseline the service replaces: a minimal Celery + Redis OCR service, the usual way.

`web.py` stores an upload in Redis and enqueues one Celery task (`tasks.py`) that OCRs the document
page after page with the service's own `process_page`, reporting progress through Celery's result
backend (`update_state`); clients poll the status endpoint every 2 s. Only the benchmarks use it; its
dependencies are the `bench` extra (celery[redis], psutil).
"""

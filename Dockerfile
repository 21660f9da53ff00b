# One image for both process types; docker-compose.yml picks the command (the Procfile's).
FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng tesseract-ocr-osd \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 app
WORKDIR /app
COPY pyproject.toml README.md settings.py worker.py ./
COPY service ./service
RUN pip install --no-cache-dir .

USER app
# WEB_CONCURRENCY: web processes on $PORT (the README's "Streams and sizing"); one unless told.
ENV PORT=8000 PYTHONUNBUFFERED=1 LOG_FORMAT=json WEB_CONCURRENCY=1
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=2)"
CMD ["python", "-m", "service.web"]

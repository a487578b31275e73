# The Switchboard application image: web (daphne), worker and beat of docker-compose.yml all run from it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # /app first on the path: settings find templates/ and static/ relative to the source, not site-packages.
    PYTHONPATH=/app \
    STATIC_ROOT=/app/staticfiles \
    MEDIA_ROOT=/data/media

WORKDIR /app
COPY . .

# collectstatic needs no database or secret (DEBUG defaults on at build time); WhiteNoise serves the result.
RUN pip install . \
    && python manage.py collectstatic --noinput \
    && useradd --system --uid 1000 --home-dir /app app \
    && mkdir -p /data/media \
    && chown app /data/media

USER app
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "contactcenter.asgi:application"]

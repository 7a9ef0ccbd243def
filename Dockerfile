# syntax=docker/dockerfile:1
# The image of `library-api serve` (Granian). With MONGODB_URL it serves that MongoDB; without
# it, the embedded database in /data, so `docker run -p 127.0.0.1:8000:8000 IMAGE` tries the
# service out at once. A start-up problem (no JWT_SECRET with MONGODB_URL, an unreachable
# database) ends the container with one line on stderr.

# Build stage: the package and its dependencies in a virtualenv.
FROM python:3.13-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/venv/bin/pip install --no-cache-dir ".[embedded]"

# Runtime stage: the virtualenv only, run by an unprivileged user; state lives in /data.
FROM python:3.13-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UPLOADS_DIR=/data/uploads \
    EMBEDDED_DB_PATH=/data/library.sqlite3
RUN groupadd --system --gid 10001 library \
    && useradd --system --uid 10001 --gid library --create-home library \
    && mkdir -p /data/uploads \
    && chown -R library:library /data \
    && chmod 700 /data
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /home/library
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=2).status != 200)"]
# SIGTERM (docker stop) drains the requests in flight for SHUTDOWN_GRACE_SECONDS.
CMD ["library-api", "serve", "--host", "0.0.0.0", "--port", "8000"]

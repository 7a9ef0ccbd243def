# syntax=docker/dockerfile:1
# Build stage: a wheel and its dependencies in a virtualenv.
FROM python:3.13-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/venv/bin/pip install --upgrade pip && /opt/venv/bin/pip install .

# Runtime stage: the virtualenv only, run by an unprivileged user.
FROM python:3.13-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    UPLOADS_DIR=/data/uploads \
    EMBEDDED_DB_PATH=/data/library.sqlite3
RUN useradd --system --uid 10001 --create-home library \
    && mkdir -p /data/uploads && chown -R library:library /data
COPY --from=build /opt/venv /opt/venv
USER library
WORKDIR /home/library
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"
CMD ["library-api", "serve", "--host", "0.0.0.0", "--port", "8000"]

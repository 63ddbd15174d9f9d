# The image for hosts that build one: Fly, Render, Railway, Dokku (Dockerfile mode), any Docker host.
# Same lock and same command as the buildpacks: `uv sync --locked --no-dev`, then the Procfile's web line.

# Build stage: uv installs the locked dependencies (no dev group), then the project itself.
FROM python:3.11-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.13 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Dependencies first, so this layer is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock .python-version ./
RUN uv sync --locked --no-dev --no-install-project
COPY README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY state ./state
RUN uv sync --locked --no-dev --no-editable

# Run stage: the virtualenv alone, run by an unprivileged user.
FROM python:3.11-slim
RUN useradd --create-home --uid 10001 --user-group bot \
    && mkdir /data && chown bot:bot /data
COPY --from=build /app/.venv /app/.venv
# PORT is the platform's to set; 3000 is the bot's own default. The SQLite state (without
# DATABASE_URL) lands in /data: mount a volume there to keep it across deploys.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PORT=3000
WORKDIR /data
USER bot
EXPOSE 3000
CMD ["python", "-m", "bot", "serve"]

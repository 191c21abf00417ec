# syntax=docker/dockerfile:1
# One image for every service; the chart picks the service by its command (clinical-<service>).
# Build: make image (or docker build -t clinical-platform .). No HEALTHCHECK: Kubernetes probes the
# gRPC health service instead (deploy/helm/clinical-platform).

# Pinned to a patch release of the interpreter .python-version names; pin the digest as well
# (--build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:...) for reproducible builds.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/clinical \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The uv the Makefile uses, from the same package index.
RUN pip install --no-cache-dir uv==0.13.8
WORKDIR /src
# Lock file and manifests first: the dependency layer is rebuilt only when they change.
COPY pyproject.toml uv.lock .python-version ./
COPY libs/platform/pyproject.toml libs/platform/
COPY libs/protos/pyproject.toml libs/protos/
COPY libs/testing/pyproject.toml libs/testing/
COPY services/audit/pyproject.toml services/audit/
COPY services/gateway/pyproject.toml services/gateway/
COPY services/notify/pyproject.toml services/notify/
COPY services/orders/pyproject.toml services/orders/
COPY services/patient/pyproject.toml services/patient/
COPY services/results/pyproject.toml services/results/
RUN uv sync --locked --no-dev --no-install-workspace --no-editable
COPY libs/ libs/
COPY services/ services/
# The services and the shared kernel as installed packages (no dev group: no test harness).
RUN uv sync --locked --no-dev --no-editable

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 clinical \
    && useradd --system --uid 10001 --gid clinical --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin clinical \
    && rm -rf /var/lib/apt/lists/* /root/.cache
COPY --from=build --chown=root:root /opt/clinical /opt/clinical
# Read-only root filesystem friendly: bytecode is compiled at build time, nothing is written
# beside the code; state goes to /var/lib/clinical/state (a volume), temporary files to /tmp.
ENV PATH=/opt/clinical/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ENVIRONMENT=production
WORKDIR /var/lib/clinical
USER 10001:10001
EXPOSE 8443 8080
CMD ["clinical-gateway"]

# syntax=docker/dockerfile:1
#
# tmf-events container image.
#
#   docker build -t tmf-events:local .
#   docker run --rm tmf-events:local --help
#
# The base image is pinned by tag. For reproducible production builds pin its digest as well,
# e.g. --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest>; get the digest
# with `docker buildx imagetools inspect python:3.11-slim-bookworm` and let Dependabot or
# Renovate keep it fresh.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------
# builder: build the project wheel and install it with its dependencies into /opt/venv.
# Every dependency ships manylinux wheels (confluent-kafka bundles librdkafka); the only
# compiling is the project's own C fast path (processor/native), hence gcc here and only
# here: the venv is copied into the runtime stage without pip, compiler or caches.
# ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TMF_REQUIRE_NATIVE=1

# The distribution's gcc of this base release, and zlib's header (the C path takes CRC-32
# from zlib, whose library the base image has); the stage is thrown away, so their exact
# versions do not reach the image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md hatch_build.py ./
COPY schemas/ schemas/
COPY processor/ processor/

RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv --without-pip /opt/venv \
    && python -m pip --python /opt/venv/bin/python install --no-cache-dir --compile /wheels/tmf_events-*.whl \
    && /opt/venv/bin/python -c "import processor._native" \
    && /opt/venv/bin/tmf-events --help >/dev/null

# ---------------------------------------------------------------------------------------
# runtime: the interpreter from the same base, the venv, an unprivileged user.
# ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="tmf-events" \
      org.opencontainers.image.description="Inventory change records to TMF638/TMF639 events as CloudEvents on Kafka, exactly once" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric uid/gid so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
# /var/lib/tmf-events/state: where compose and the chart keep state snapshots (state_dir);
# a new named volume mounted there takes over its owner.
RUN groupadd --system --gid 10001 tmf \
    && useradd --system --no-log-init --uid 10001 --gid 10001 --home-dir /nonexistent \
       --no-create-home --shell /usr/sbin/nologin tmf \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/tmf-events/state

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /tmp
USER 10001:10001

# /metrics, /healthz, /readyz (and the query API for `tmf-events api`) on setting http_port.
EXPOSE 8080

# No curl in the slim image: Python's urllib. Follows TMF_EVENTS_HTTP_PORT when it is set.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('TMF_EVENTS_HTTP_PORT', '8080'), timeout=4)"]

ENTRYPOINT ["tmf-events"]
CMD ["run"]

# syntax=docker/dockerfile:1
# kong-canary: the sidecar that Spinnaker webhook stages call to split Kong upstream traffic.
# The Helm chart (helm/kong-canary) runs this image with a read-only root filesystem and
# emptyDirs on /tmp and $PROMETHEUS_MULTIPROC_DIR; tests/helm/test_image.py checks they agree.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: install the package into a venv; the runtime stage gets no sources or pip ---
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY . .
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install . \
 && /opt/venv/bin/python -m pip uninstall -y pip setuptools

# --- runtime ---
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PROMETHEUS_MULTIPROC_DIR=/var/run/kong-canary/metrics
# Numeric uid/gid so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
RUN groupadd --system --gid 10001 kong-canary \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin kong-canary \
 && mkdir -p /var/run/kong-canary/metrics \
 && chown -R 10001:10001 /var/run/kong-canary
COPY --from=build /opt/venv /opt/venv
# The Kayenta canary-config library lives outside the Python package: the rendered configs
# for `kong-canary kayenta sync --dir …/configs` (the chart's hook Job), and its definition for
# `kong-canary preflight` and the split view's Prometheus-plugin check (sidecar/kayenta/library.py
# finds it through KONG_CANARY_KAYENTA_LIBRARY).
COPY kayenta-configs/library.yaml /opt/kong-canary/kayenta-configs/library.yaml
COPY kayenta-configs/configs /opt/kong-canary/kayenta-configs/configs
ENV KONG_CANARY_KAYENTA_LIBRARY=/opt/kong-canary/kayenta-configs
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["kong-canary"]
CMD ["serve", "--bind", "0.0.0.0:8080"]

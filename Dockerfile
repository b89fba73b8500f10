# The portkey-phoenix-ingest image: the tool without the Phoenix server (it talks to yours),
# run as uid/gid 10001 as in cron/k8s-*.yaml, configured only through the environment.
#
#   docker build -t portkey-phoenix-ingest:0.1.0 .
#   docker run --rm portkey-phoenix-ingest:0.1.0 --version
#   docker run --rm --env-file /etc/portkey-phoenix-ingest/env \
#     -v portkey-ingest-state:/state portkey-phoenix-ingest:0.1.0 sync --max-duration 12m
#
# No secret is baked in: keys come at run time (--env-file, a Kubernetes Secret).
# Keep the tag equal to the version in pyproject.toml (tests/e2e/test_ship.py checks the manifests).

# Pinned by version so a rebuild gets the same Python; bump it deliberately.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# ---- build: the wheel, from the files .dockerignore lets in --------------------------------
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sample_logs ./sample_logs
COPY ingest ./ingest
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

# ---- run: the wheel and its dependencies, without the server extra -------------------------
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    INGEST_STATE_DIR=/state
# The wheel is mounted for the install only, so it is in no layer (RUN --mount: BuildKit, the
# default builder since Docker 23).
RUN --mount=type=bind,from=build,source=/dist,target=/dist \
    pip install --no-cache-dir /dist/*.whl \
 && groupadd --gid 10001 ingest \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin ingest \
 && mkdir /state && chown 10001:10001 /state && chmod 0700 /state
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
# Watermark, lock, quarantine files, staged exports: mount a volume or they die with the container.
VOLUME ["/state"]
# As PID 1, Python ignores SIGTERM; SIGINT takes the tool's Ctrl-C path (exit 130, progress up
# to the last verified batch kept). `docker stop` and containerd (Kubernetes) send this signal.
STOPSIGNAL SIGINT
ENTRYPOINT ["portkey-phoenix-ingest"]
CMD ["--help"]

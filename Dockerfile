# The fairpack image: fairpack-operator, fairpack-extender and the fairpack CLI (the Helm chart
# runs the first two from it). Slim, non-root, base pinned to an exact Python release.
#   docker build -t fairpack/fairpack:0.1.0 .
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY fairpack fairpack
COPY solver solver
COPY extender extender
COPY operator operator
RUN python -m venv /opt/fairpack \
 && /opt/fairpack/bin/pip install --no-cache-dir --disable-pip-version-check .

FROM ${PYTHON_IMAGE}
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin fairpack
COPY --from=build /opt/fairpack /opt/fairpack
ENV PATH=/opt/fairpack/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
CMD ["fairpack-operator"]

# bids_amyloid BIDS-App image.
#
#   docker build -t bids_amyloid:0.1.0 .                          # with BiomedCLIP weights (needs the HF hub)
#   docker build --build-arg FETCH_WEIGHTS=0 -t bids_amyloid:0.1.0 .  # without (pass --backbone-weights at run time)
#
# Behind a TLS-re-signing proxy, put the proxy's CA bundle (PEM) at ./ci-ca.crt before building: it is
# used by pip / the weights download in the throw-away stages only and never reaches the final image
# (.ci/docker_smoke.sh does this with the host's /etc/ssl/certs/ca-certificates.crt).
#
# Stages:  deps (venv with the pinned dependencies; cached unless pyproject.toml changes)
#          weights (optional BiomedCLIP download)
#          final (runtime: python3 + venv + weights + atlases + the package; no compilers, no CA, no pip cache)
# A change to the package source rebuilds only the last layers of the final stage.

ARG VERSION=0.1.0

# --------------------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS deps

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_DEFAULT_TIMEOUT=180 \
    PYTHONDONTWRITEBYTECODE=1

# Debian stable's python3 is 3.11. DL3008 (pin apt versions) is ignored on purpose: bookworm only
# receives security/point-release fixes, and exact pins break as soon as the mirror moves on.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv

# pyproject.toml alone decides this (5+ GB) layer; the optional CA file only serves the download.
COPY pyproject.toml ci-ca.cr[t] /tmp/build/
RUN set -eu; \
    if [ -s /tmp/build/ci-ca.crt ]; then \
        echo "using the build-context CA bundle for TLS (not kept in the final image)"; \
        export PIP_CERT=/tmp/build/ci-ca.crt; \
    fi; \
    /opt/venv/bin/python -c 'import tomllib; print("\n".join(tomllib.load(open("/tmp/build/pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /tmp/build/requirements.txt; \
    cat /tmp/build/requirements.txt; \
    /opt/venv/bin/pip install --no-cache-dir pip==26.3 setuptools==84.2.1; \
    /opt/venv/bin/pip install --no-cache-dir -r /tmp/build/requirements.txt; \
    /opt/venv/bin/pip freeze > /opt/venv/pip-freeze.txt; \
    rm -rf /tmp/build /root/.cache

# --------------------------------------------------------------------------------------------------
FROM deps AS weights

# 1: download BiomedCLIP's vision tower into the image (needs huggingface.co); 0: image without weights.
ARG FETCH_WEIGHTS=1
COPY pyproject.toml README.m[d] LICENS[E] ci-ca.cr[t] /tmp/src/
COPY bids_amyloid /tmp/src/bids_amyloid
RUN set -eu; \
    mkdir -p /opt/bids_amyloid/weights; \
    if [ "$FETCH_WEIGHTS" = 1 ]; then \
        if [ -s /tmp/src/ci-ca.crt ]; then \
            export SSL_CERT_FILE=/tmp/src/ci-ca.crt REQUESTS_CA_BUNDLE=/tmp/src/ci-ca.crt CURL_CA_BUNDLE=/tmp/src/ci-ca.crt; \
            export HF_HUB_DISABLE_XET=1; \
        fi; \
        /opt/venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation --no-index /tmp/src; \
        /opt/venv/bin/bids_amyloid fetch-weights /opt/bids_amyloid/weights/biomedclip; \
        echo "BiomedCLIP vision weights baked into /opt/bids_amyloid/weights/biomedclip" \
            > /opt/bids_amyloid/weights/README.txt; \
    else \
        echo "NOTE: built with FETCH_WEIGHTS=0: this image has NO BiomedCLIP weights"; \
        printf '%s\n' "This image was built with FETCH_WEIGHTS=0 and holds NO BiomedCLIP weights." \
            "Fetch them once on a machine with internet access: bids_amyloid fetch-weights DIR/biomedclip" \
            "then bind-mount DIR here (-v DIR:/opt/bids_amyloid/weights:ro) or pass --backbone-weights." \
            > /opt/bids_amyloid/weights/README.txt; \
    fi; \
    rm -rf /tmp/src /root/.cache

# --------------------------------------------------------------------------------------------------
FROM debian:bookworm-slim

ARG VERSION
ARG FETCH_WEIGHTS=1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# python3 (3.11) for the venv; mricron-data: ch2 head and the AAL atlas (BSD-3-Clause).
# A non-root user with a world-readable HOME (the app never writes there; any UID works).
# DL3008 ignored as above (stable release: unpinned apt versions only get security fixes).
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 mricron-data \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && useradd --create-home --home-dir /home/bids_amyloid --shell /bin/bash --uid 1000 --user-group bids_amyloid \
 && chmod 0755 /home/bids_amyloid

COPY --from=deps /opt/venv /opt/venv
COPY --from=weights /opt/bids_amyloid/weights /opt/bids_amyloid/weights

# Everything that could write a cache points under /tmp: the image runs with --read-only
# (Docker: --tmpfs /tmp or the default writable /tmp of Apptainer), as any UID.
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/home/bids_amyloid \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    HF_HOME=/tmp/.cache/huggingface \
    XDG_CACHE_HOME=/tmp/.cache \
    TORCH_HOME=/tmp/.cache/torch \
    MPLCONFIGDIR=/tmp/.cache/matplotlib \
    NILEARN_DATA=/tmp/.cache/nilearn_data \
    NUMBA_CACHE_DIR=/tmp/.cache/numba \
    BIDS_AMYLOID_ATLAS_DIR=/usr/share/mricron/templates \
    BIDS_AMYLOID_IMAGE_WEIGHTS_BAKED=${FETCH_WEIGHTS} \
    BIDS_AMYLOID_CONTAINER_TYPE=docker \
    BIDS_AMYLOID_CONTAINER_TAG=bids_amyloid:${VERSION}

# Fails the build early if the heavy stack does not import on this runtime base (cached).
RUN python -c "import torch, torchvision, timm, open_clip, ants, nilearn, bids, nibabel, sklearn, matplotlib; \
print('torch', torch.__version__, 'torchvision', torchvision.__version__)" \
 && python -c "from nilearn import datasets; datasets.load_mni152_template(resolution=1)" \
 && test -s /usr/share/mricron/templates/aal.nii.gz \
 && cat /opt/bids_amyloid/weights/README.txt \
 && rm -rf /tmp/.cache

# The package last: a source change rebuilds only this layer (no network: --no-deps --no-index).
COPY pyproject.toml README.m[d] LICENS[E] /tmp/src/
COPY bids_amyloid /tmp/src/bids_amyloid
RUN pip install --no-cache-dir --no-deps --no-build-isolation --no-index /tmp/src \
 && rm -rf /tmp/src /tmp/pip-* \
 && installed="$(bids_amyloid --version)" \
 && echo "$installed" \
 && if [ "$installed" != "bids_amyloid ${VERSION}" ]; then \
        echo "build argument VERSION=${VERSION} does not match the package ($installed)" >&2; exit 1; \
    fi

# Metadata last: a new commit (VCS_REF) must not invalidate the layers above.
ARG VCS_REF=unknown
LABEL org.opencontainers.image.title="bids_amyloid" \
      org.opencontainers.image.description="BIDS-App: amyloid-beta positivity from MRI alone" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.source="https://github.com/bids-amyloid/bids_amyloid" \
      org.opencontainers.image.url="https://github.com/bids-amyloid/bids_amyloid" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="debian:bookworm-slim" \
      io.github.bids_amyloid.weights.biomedclip="${FETCH_WEIGHTS}"

USER 1000:1000
WORKDIR /home/bids_amyloid
ENTRYPOINT ["bids_amyloid"]
CMD ["--help"]

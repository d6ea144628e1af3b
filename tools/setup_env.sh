#!/usr/bin/env bash
# Create (or update) the virtual environment that runs dsc_mm, in one command.
#
# Usage: tools/setup_env.sh            (what `make demo` / `make test` call)
#
# Overridable variables (defaults in brackets):
#   VENV         where the environment lives                  [.venv]
#   PYTHON       interpreter used to create it                 [python3]
#   TORCH_SPEC   pip spec of torch + torchvision               [the pins of requirements.txt]
#                e.g. TORCH_SPEC="torch==2.4.1 torchvision==0.19.1 --index-url <your CUDA index>"
#   FORCE_CUDA   1 builds mmcv's CUDA ops (needs nvcc)          [0]
#   MMCV_CUDA_ARCH  TORCH_CUDA_ARCH_LIST for that build        [torch's default]
#   DSC_MM_CACHE where the built mmcv wheel is kept            [~/.cache/dsc_mm]
#   MAX_JOBS     parallel compile jobs for mmcv                [nproc]
#
# The script is idempotent: it records a fingerprint of everything it installed in
# $VENV/.dsc_mm-stamp and does nothing when that fingerprint has not changed. The mmcv wheel
# is built once per (torch version, CUDA flag) and cached, so a fresh venv reuses it (~2 min).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
FORCE_CUDA=${FORCE_CUDA:-0}
DSC_MM_CACHE=${DSC_MM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dsc_mm}
REQ=requirements.txt
MMCV_VERSION=$(sed -n 's/^mmcv==\([0-9.]*\).*/\1/p' "$REQ")
DEFAULT_TORCH_SPEC=$(grep -E '^(torch|torchvision)==' "$REQ" | tr '\n' ' ')
TORCH_SPEC=${TORCH_SPEC:-$DEFAULT_TORCH_SPEC}

log() { printf '[setup_env] %s\n' "$*"; }

fingerprint=$( { cat "$REQ" pyproject.toml "$0"; echo "$TORCH_SPEC $FORCE_CUDA ${MMCV_CUDA_ARCH:-}"; } \
    | sha256sum | cut -c1-16)
stamp="$VENV/.dsc_mm-stamp"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$fingerprint" ]; then
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtual environment $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
PY="$ROOT/$VENV/bin/python"
[ -x "$PY" ] || PY="$VENV/bin/python"   # VENV given as an absolute path
# The filter drops pip's notes about this machine's empty local index folders (pip.conf).
pip_install() {
    "$PY" -m pip install --disable-pip-version-check -q "$@" \
        2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
}

# setuptools<81: mmcv's setup.py and mmengine's cross-package config bases use pkg_resources.
log "installing build tools"
pip_install "$(grep -E '^setuptools==' "$REQ")" wheel

log "installing $TORCH_SPEC"
# numpy is pinned here already: torchvision would otherwise pull numpy 2 before the pin applies.
# shellcheck disable=SC2086  # TORCH_SPEC may hold several words (packages and pip options)
pip_install $TORCH_SPEC "$(grep -E '^numpy==' "$REQ")"

torch_version=$("$PY" -c 'import torch; print(torch.__version__)')
wheel_dir="$DSC_MM_CACHE/wheels/mmcv-$MMCV_VERSION-torch$torch_version-cuda$FORCE_CUDA"
if ! ls "$wheel_dir"/mmcv-*.whl >/dev/null 2>&1; then
    log "building mmcv $MMCV_VERSION with ops against torch $torch_version (FORCE_CUDA=$FORCE_CUDA)."
    log "This happens once per torch version and takes about 8-9 minutes on 2 cores."
    build=$(mktemp -d)
    trap 'rm -rf "$build"' EXIT
    # The sdist comes from pip's configured index: no hard-coded URL.
    "$PY" -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: \
        "mmcv==$MMCV_VERSION" -d "$build" \
        2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
    tar -xzf "$build"/mmcv-"$MMCV_VERSION".tar.gz -C "$build"
    src="$build/mmcv-$MMCV_VERSION"
    # torch>=2.5 headers need C++20, but mmcv's setup.py appends -std=c++17 after any user flag,
    # so a flag cannot override it: patch the source (open-mmlab/mmcv#3096).
    sed -i 's/-std=c++17/-std=c++20/g' "$src/setup.py"
    grep -q 'c++20' "$src/setup.py" || { log "could not patch $src/setup.py for C++20"; exit 1; }
    # --no-build-isolation: in an isolated build env torch is absent and mmcv silently builds
    # WITHOUT its ops. CFLAGS replace Python's defaults, so -O3 is repeated here.
    (
        cd "$src"
        export MMCV_WITH_OPS=1 FORCE_CUDA MAX_JOBS=${MAX_JOBS:-$(nproc)}
        export CFLAGS="-DNDEBUG -O3 -g0 -fwrapv" CXXFLAGS="-DNDEBUG -O3 -g0 -fwrapv"
        [ -n "${MMCV_CUDA_ARCH:-}" ] && export TORCH_CUDA_ARCH_LIST="$MMCV_CUDA_ARCH"
        "$PY" -m pip wheel --disable-pip-version-check -q --no-deps --no-build-isolation \
            . -w "$build/dist"
    )
    mkdir -p "$wheel_dir"
    # Atomic publish into the cache: a killed build never leaves a half-written wheel behind.
    for w in "$build"/dist/mmcv-*.whl; do
        cp "$w" "$wheel_dir/.tmp-$(basename "$w")" && mv "$wheel_dir/.tmp-$(basename "$w")" "$wheel_dir/$(basename "$w")"
    done
fi
log "installing mmcv from $wheel_dir"
pip_install --no-deps --force-reinstall "$wheel_dir"/mmcv-*.whl

log "installing the OpenMMLab stack and test tools ($REQ)"
# torch and mmcv are already in place; the rest is installed with the torch that is there.
grep -vE '^(torch|torchvision|mmcv)==' "$REQ" > "$VENV/.requirements-rest.txt"
pip_install -r "$VENV/.requirements-rest.txt"
pip_install --no-deps -e .

"$PY" -c 'import mmcv.ops; from mmcv.ops import nms, RoIAlign' \
    || { log "mmcv was installed without its compiled ops; delete $wheel_dir and rerun."; exit 1; }
echo "$fingerprint" > "$stamp"
log "environment ready: $VENV ($("$PY" -m dsc_mm.env --short))"

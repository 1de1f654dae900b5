#!/usr/bin/env bash
# Measures the PyTorch / OpenBLAS anchors on this machine (scripts/anchors/torch_cpu_anchors.py).
# Creates the virtual environment .venv-anchor/ at the repository root on first use (pip install
# of requirements.txt: torch, numpy, threadpoolctl, pinned), then runs the script with
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for this command only: machines that set
# OPENBLAS_CORETYPE=Haswell hold numpy's OpenBLAS to its AVX2 kernels otherwise.
# Usage: scripts/anchors/run-anchors.sh [--quick] [--threads 2] [--reps 5] [--json FILE] ...
#        scripts/anchors/run-anchors.sh --install   (only creates the environment)
#        (PMOE_ANCHOR_VENV=DIR picks another environment folder)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=${PMOE_ANCHOR_VENV:-$(cd "$here/../.." && pwd)/.venv-anchor}
if ! "$venv/bin/python" -c 'import torch, numpy, threadpoolctl' 2>/dev/null; then
  echo "run-anchors: creating $venv (pip install -r scripts/anchors/requirements.txt; torch is large)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$here/requirements.txt" >&2
fi
[ "${1:-}" != --install ] || exit 0
exec env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$venv/bin/python" "$here/torch_cpu_anchors.py" "$@"

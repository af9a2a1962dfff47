#!/usr/bin/env bash
# Everything the test suite needs, on a machine that reaches only the package registries
# (README's test command and .ci/run run this, then pytest). What cannot be had is said, and the
# tests that need it are skipped with that reason; nothing here pulls a CUDA build of PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
pip install -q -e ".[test]"

# PyTorch, CPU build only, for the CLIP / Inception / LPIPS parity tests. PyPI's Linux wheels of
# torch are CUDA builds (gigabytes of nvidia-* packages), so the CPU build is asked for by its local
# version: from a configured wheel folder or index, else from PyTorch's own CPU index.
if ! python -c "import torch" 2>/dev/null; then
  pip install -q "torch==2.13.0+cpu" 2>/dev/null \
    || pip install -q --retries 1 --timeout 15 "torch==2.13.0+cpu" --extra-index-url https://download.pytorch.org/whl/cpu 2>/dev/null \
    || echo "note: no CPU build of PyTorch is reachable; the parity tests (tests/test_*parity*, LPIPS, Inception) will be skipped"
fi

# A headless browser (Debian's chromium + chromedriver) for the web demo's test.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
      || echo "note: apt-get could not install chromium; the web demo's browser test will be skipped"
  else
    echo "note: no chromium + chromedriver (sudo apt-get install chromium chromium-driver); the web demo's browser test will be skipped"
  fi
fi

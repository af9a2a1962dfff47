#!/usr/bin/env bash
# Fetch the Google and Twitter emoji sets with `npm pack` and prepare them as a 64 px dataset.
#   scripts/fetch_emoji.sh [OUT_DIR] [extra args for gigagan_jax.data.prepare]
# Then: python train.py --config.data.kind=folder --config.data.path=OUT_DIR
set -euo pipefail
out="${1:-data_cache/emoji}"
shift || true
exec python -m gigagan_jax.data.prepare --kind emoji --out "$out" "$@"

#!/usr/bin/env bash
# Start or resume the long GTCRN training runs in the background (one torch thread each), logging to
# runs/NAME.log. Usage: scripts/train_background.sh [distill] [alone] [large]   (default: distill alone)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p runs
runs=("$@")
[ ${#runs[@]} -eq 0 ] && runs=(distill alone)
for r in "${runs[@]}"; do
  cfg="configs/gtcrn_$r.yaml"
  [ -f "$cfg" ] || { echo "no $cfg" >&2; exit 1; }
  if pgrep -f "train fit --config $cfg" >/dev/null; then echo "$r: already running"; continue; fi
  resume=()
  [ -f "runs/gtcrn_$r/checkpoints/last.ckpt" ] && resume=(--ckpt_path last)
  DENOISEZOO_THREADS=1 nohup denoisezoo train fit --config "$cfg" --trainer.enable_progress_bar false \
    "${resume[@]}" >> "runs/gtcrn_$r.log" 2>&1 &
  echo "$r: started (pid $!, ${resume[*]:-from scratch})"
done

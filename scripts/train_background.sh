#!/usr/bin/env bash
# Start or resume long training runs in the background (one torch thread each unless DENOISEZOO_THREADS
# is set, e.g. 2 for a lone run on a 2-core machine), logging to
# runs/NAME.log. Usage:
#   scripts/train_background.sh [RUN...] [-- EXTRA LightningCLI ARGS]
# RUN is a config name (configs/RUN.yaml or configs/experiments/RUN.yaml, e.g. rnnoise_16k_distill) or a
# GTCRN short name (alone, teacher_adapt, distill -> configs[/experiments]/gtcrn_RUN.yaml); default:
# distill alone. EXTRA args go to every run started from scratch or resumed, e.g.
# `-- --model.init_args.init_from gtcrn` to warm-start from the shipped model.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p runs
runs=(); extra=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; extra=("$@"); break; fi
  runs+=("$1"); shift
done
[ ${#runs[@]} -eq 0 ] && runs=(distill alone)
for r in "${runs[@]}"; do
  cfg=""
  for c in "configs/$r.yaml" "configs/gtcrn_$r.yaml" "configs/experiments/$r.yaml" "configs/experiments/gtcrn_$r.yaml"; do
    [ -f "$c" ] && { cfg="$c"; break; }
  done
  [ -n "$cfg" ] || { echo "no configs[/experiments]/$r.yaml or configs[/experiments]/gtcrn_$r.yaml" >&2; exit 1; }
  name="$(basename "$cfg" .yaml)"
  if pgrep -f "train fit --config $cfg" >/dev/null; then echo "$name: already running"; continue; fi
  # --ckpt_path last resumes from the run folder's checkpoints/last.ckpt (config run.dir, or a
  # --run.dir in EXTRA) and starts from scratch, with a warning, when there is none yet
  DENOISEZOO_THREADS="${DENOISEZOO_THREADS:-1}" nohup denoisezoo train fit --config "$cfg" --trainer.enable_progress_bar false \
    --ckpt_path last "${extra[@]}" >> "runs/$name.log" 2>&1 &
  echo "$name: started (pid $!; resumes if its run folder has checkpoints/last.ckpt) ${extra[*]:-}"
done

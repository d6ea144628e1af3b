#!/usr/bin/env bash
# Train on a Slurm cluster.
# Usage: tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR NUM_GPUS [train.py options...]
# GPUS_PER_NODE (default min(NUM_GPUS, 8)), CPUS_PER_TASK (5), SRUN_ARGS are read from the environment.
set -euo pipefail
if [ $# -lt 5 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR NUM_GPUS [tools/train.py options]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=$5
shift 5
GPUS_PER_NODE=${GPUS_PER_NODE:-$(( GPUS < 8 ? GPUS : 8 ))}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-}
PYTHON=${PYTHON:-python}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

# shellcheck disable=SC2086  # SRUN_ARGS holds several srun options
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
srun -p "$PARTITION" --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" --ntasks="$GPUS" --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" --kill-on-bad-exit=1 $SRUN_ARGS \
    "$PYTHON" -u "$ROOT/tools/train.py" "$CONFIG" --work-dir="$WORK_DIR" --launcher=slurm "$@"

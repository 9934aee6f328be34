#!/usr/bin/env bash
# Retrain the detectors: the whole pipeline (collect -> validate -> featurize -> split -> train ->
# evaluate -> register -> promote past the gate -> HTML report) with the original flags.
#
#   ./scripts/retrain_models.sh                                   # demo data, all layers
#   ./scripts/retrain_models.sh --layers "layer1 layer2" --batch-size 64 --epochs 50 --lr 0.001
#   ./scripts/retrain_models.sh --source zeek:/var/log/zeek --workdir /srv/maximus/run
#
# The original environment variables still set the defaults (a flag wins over its variable):
#   PYTHON (the interpreter that runs the pipeline), LAYERS, BATCH_SIZE, NUM_EPOCHS, LEARNING_RATE
#   LAYERS="layer1 layer2" NUM_EPOCHS=50 ./scripts/retrain_models.sh
# layer4 and layer5 (named by the original default LAYERS) have no implementation yet: they
# are skipped, said in one line, and do not change the exit code.
#
# Any failing step stops the script with a non-zero exit code (maximus-train's: 130 when
# interrupted, 143 when terminated); logs go to stderr and to <workdir>/retrain.log (the folder is created first,
# 0700, and the log 0600). maximus-train runs with -v, as the original script logged every
# step: the log holds each step's details and, on an error, its traceback.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: retrain_models.sh [--layers "layer1 layer2 layer3"] [--batch-size N] [--epochs N]
                         [--lr RATE] [--source TYPE:PATH]... [--config FILE.toml]
                         [--workdir DIR] [--help]

Runs `maximus-train pipeline` (or `maximus-train demo` when no --source or --config is given).
  --layers      layers to train, space-separated (default "layer1 layer2 layer3")
  --batch-size  batch size of every layer (default: each layer's own)
  --epochs      epochs per layer (default 20)
  --lr          learning rate of every layer
  --source      an input such as zeek:/var/log/zeek (repeatable)
  --config      a pipeline TOML file
  --workdir     where everything is written (default: the config's workdir, else
                maximus-run, or maximus-demo without --source and --config)

Environment (the original script's; a flag wins): PYTHON runs `$PYTHON -m training.cli`
instead of maximus-train; LAYERS, BATCH_SIZE, NUM_EPOCHS and LEARNING_RATE are the defaults
of --layers, --batch-size, --epochs and --lr. layer4 and layer5 are skipped (not implemented).
USAGE
}

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -n "${PYTHON:-}" ]]; then
    MAXIMUS=("$PYTHON" -m training.cli)
elif [[ -x "$REPO/.venv/bin/maximus-train" ]]; then
    MAXIMUS=("$REPO/.venv/bin/maximus-train")
elif command -v maximus-train >/dev/null; then
    MAXIMUS=("$(command -v maximus-train)")
else
    echo "error: maximus-train not found; run 'make install' in $REPO first, or set PYTHON" >&2
    exit 2
fi

args=()
layers=()
inputs=0
workdir=""
batch_size="${BATCH_SIZE:-}"
epochs="${NUM_EPOCHS:-}"
lr="${LEARNING_RATE:-}"
layer_list="${LAYERS:-}"
config=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --layers|--batch-size|--batch_size|--epochs|--lr|--source|--config|--workdir)
            if [[ $# -lt 2 ]]; then echo "error: $1 needs a value" >&2; usage >&2; exit 2; fi
            case "$1" in
                --layers) layer_list="$2" ;;
                --batch-size|--batch_size) batch_size="$2" ;;
                --epochs) epochs="$2" ;;
                --lr) lr="$2" ;;
                --source) args+=("$1" "$2"); inputs=1 ;;
                --config) args+=("$1" "$2"); inputs=1; config="$2" ;;
                --workdir) workdir="$2"; args+=(--workdir "$2") ;;
            esac
            shift 2 ;;
        *) echo "error: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
done

if [[ -n "$layer_list" ]]; then
    read -r -a requested <<< "$layer_list"
    skipped=()
    for layer in "${requested[@]}"; do
        case "$layer" in
            layer1|layer2|layer3) layers+=("$layer") ;;
            layer4|layer5) skipped+=("$layer") ;;
            *) echo "error: unknown layer '$layer' (use layer1, layer2, layer3)" >&2
               exit 2 ;;
        esac
    done
    if [[ ${#skipped[@]} -gt 0 ]]; then
        echo "retrain_models.sh: skipping ${skipped[*]}: not implemented yet (layers 1-3 are)" >&2
    fi
    if [[ ${#layers[@]} -eq 0 ]]; then
        echo "retrain_models.sh: no layer left to train" >&2
        exit 0
    fi
    args+=(--layers "${layers[@]}")
fi
[[ -n "$batch_size" ]] && args+=(--batch-size "$batch_size")
[[ -n "$epochs" ]] && args+=(--epochs "$epochs")
[[ -n "$lr" ]] && args+=(--lr "$lr")

command=demo
[[ $inputs -eq 1 ]] && command=pipeline
if [[ -z "$workdir" && -n "$config" ]]; then
    # the run's folder is the config's workdir (when it sets one): the log goes beside it
    python="${PYTHON:-$(dirname "${MAXIMUS[0]}")/python}"
    [[ -x "$python" ]] || python=python3
    workdir=$("$python" -c 'import sys, tomllib
try:
    print(tomllib.load(open(sys.argv[1], "rb")).get("workdir", ""))
except Exception:
    print("")  # maximus-train names the problem with the file' "$config")
fi
if [[ -z "$workdir" ]]; then
    workdir=$([[ $command == demo ]] && echo maximus-demo || echo maximus-run)
fi
# What this script makes is this user's only: the workdir 0700 (as maximus-train makes its
# folders) and retrain.log 0600, whatever the caller's umask.
umask 077
mkdir -p "$workdir"
log="$workdir/retrain.log"
touch "$log"
chmod 700 "$workdir" && chmod 600 "$log"  # made by an earlier release with the umask's modes
echo "retrain_models.sh: ${MAXIMUS[*]} -v $command ${args[*]}" >&2
# maximus-train's stderr goes through tee to the terminal and the log; its stdout stays ours.
# Ctrl-C reaches the whole process group, as SIGTERM does from `timeout` or systemd: tee
# ignores both, so it outlives maximus-train and passes on its last words ("error:
# interrupted ...", exit 130; "error: terminated (SIGTERM)", 143) instead of dying first and
# leaving it nowhere to write (exit 1, nothing said). The exit code is maximus-train's own.
exec 3>&1  # the script's stdout, for maximus-train's (the pipe takes its stderr)
set +e
"${MAXIMUS[@]}" -v "$command" "${args[@]}" 2>&1 1>&3 3>&- \
    | ( trap '' INT TERM; exec tee -a "$log" >&2 3>&- )
status=("${PIPESTATUS[@]}")
set -e
if [[ ${status[0]} -eq 0 && ${status[1]} -ne 0 ]]; then
    echo "retrain_models.sh: writing $log failed (tee exit ${status[1]})" >&2
    exit "${status[1]}"
fi
exit "${status[0]}"

#!/bin/sh
# The platform image's entry point. SageMaker starts `docker run IMAGE train` for training jobs
# and `docker run IMAGE serve` for endpoints; anything else runs as given (pipeline steps,
# Kubernetes commands). `exec` keeps the Python process as PID 1, so it receives SIGTERM.
set -eu
command=train
if [ "$#" -gt 0 ]; then
    command=$1
    shift
fi
case "$command" in
    train) exec python -m training launch "$@" ;;
    serve) exec python -m serving serve "$@" ;;
    evaluate) exec python -m serving evaluate "$@" ;;
    *) exec "$command" "$@" ;;
esac

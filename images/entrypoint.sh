#!/bin/sh
# The platform image's entry point. SageMaker starts `docker run IMAGE train` for training jobs
# and `docker run IMAGE serve` for endpoints; anything else runs as given (pipeline steps,
# Kubernetes commands). `exec` keeps the Python process as PID 1, so it receives SIGTERM.
set -eu
case "${1:-train}" in
    train) shift 2>/dev/null || true; exec python -m training launch "$@" ;;
    serve) shift; exec python -m serving serve "$@" ;;
    evaluate) shift; exec python -m serving evaluate "$@" ;;
    *) exec "$@" ;;
esac

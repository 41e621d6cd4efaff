#!/usr/bin/env bash
# Shipyard's entry for ACTIONS_RUNNER_CONTAINER_HOOKS=.../shipyard.sh (the runner runs it with bash):
# `exec` makes the native hook this very process, so the runner's SIGINT/SIGTERM reach it directly
# and its exit code is ours; stdin/stdout/stderr are inherited.
exec "${SHIPYARD_BINARY:-$(dirname "$0")/shipyard}" "$@"

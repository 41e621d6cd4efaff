#!/usr/bin/env bash
# Shipyard's entry for ACTIONS_RUNNER_CONTAINER_HOOKS=.../shipyard.sh (the runner runs it with bash):
# the native hook inherits stdin/stdout/stderr; its exit code is ours.
exec "${SHIPYARD_BINARY:-$(dirname "$0")/shipyard}" "$@"

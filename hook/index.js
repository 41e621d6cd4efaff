// Shipyard's entry for ACTIONS_RUNNER_CONTAINER_HOOKS=.../index.js: the runner starts this with its
// own Node; it hands stdin, stdout and stderr straight to the native hook and exits with its code.
const { spawnSync } = require('child_process');
const path = require('path');
const binary = process.env.SHIPYARD_BINARY || path.join(__dirname, 'shipyard');
const result = spawnSync(binary, process.argv.slice(2), { stdio: 'inherit' });
if (result.error) {
  console.log(`::error::Cannot start the Shipyard hook binary ${binary}: ${result.error.message}`);
  process.exit(1);
}
process.exit(result.status === null ? 1 : result.status);

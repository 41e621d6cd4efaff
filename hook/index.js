// Shipyard's entry for ACTIONS_RUNNER_CONTAINER_HOOKS=.../index.js: the runner starts this with its
// own Node; it hands stdin, stdout and stderr straight to the native hook and exits with its code.
// The runner cancels a step by signalling this process, so SIGINT/SIGTERM are passed on to the hook
// (which then stops the step's processes in the cluster) instead of orphaning it.
const { spawn } = require('child_process');
const path = require('path');
const binary = process.env.SHIPYARD_BINARY || path.join(__dirname, 'shipyard');
const child = spawn(binary, process.argv.slice(2), { stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => { if (child.exitCode === null) child.kill(signal); });
}
child.on('error', (err) => {
  console.log(`::error::Cannot start the Shipyard hook binary ${binary}: ${err.message}`);
  process.exit(1);
});
child.on('exit', (code, signal) => {
  process.exit(code !== null ? code : 128 + (require('os').constants.signals[signal] || 1));
});

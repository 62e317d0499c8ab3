#!/usr/bin/env node
// `kubectl vaultpam ...` (this file on the PATH as kubectl-vaultpam) and `vaultpam ...` (npx
// vaultpam): the plugin for the people who run connectors. kubectl runs a plugin as its own
// process with the arguments after the plugin's name and its own environment (KUBECONFIG
// included), so this reads nothing but argv, the environment and the streams (src/plugin/main.ts).
import { basename } from 'node:path';
import { runPlugin } from '../plugin/main.ts';

const invokedAs = basename(process.argv[1] ?? '');
const program = invokedAs.startsWith('kubectl-') ? 'kubectl vaultpam' : 'vaultpam';
const code = await runPlugin(process.argv.slice(2), {
  stdout: { write: (text) => process.stdout.write(text) },
  stderr: { write: (text) => process.stderr.write(text) },
  env: process.env,
  program,
  now: () => new Date(),
});
// Let stdout drain (a piped `| jq` may read slowly) and handles close; the exit code is set now.
process.exitCode = code;

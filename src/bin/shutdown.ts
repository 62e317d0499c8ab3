// How each program stops: on SIGTERM or SIGINT (onShutdownSignal: stop cleanly, exit 0 or 130),
// and, when npm started it, also when it is orphaned. `npx node src/bin/x.ts` (like `npm exec` and
// `npm start`) runs the program under `sh -c`; npm passes a SIGTERM on to that shell only, and the
// shell dies without passing it further, which left the program running with nobody to stop it.
// Orphaned (its parent gone), it sends itself the SIGTERM the shell swallowed and stops as if it had
// arrived. A program started any other way is left alone: one deliberately left running by a shell
// that exits (nohup, &) keeps running. The supported ways to run a program are in README.md
// ("Running the programs"): the pinned Node directly, or `npm exec -c 'exec node ...'`.
import { onShutdownSignal, type ShutdownSignalOptions } from '../lib/cli.ts';

/** How often an npm-started program checks whether its parent is gone. */
export const ORPHAN_CHECK_MS = 500;

/** Whether npm (npx, npm exec, npm run/start) started this process: it sets npm_command. */
export const startedByNpm = (env: NodeJS.ProcessEnv) => Boolean(env.npm_command);

export function stopOnSignalOrOrphaned(
  stop: () => Promise<void>,
  exit: (code: number) => void = process.exit,
  options: ShutdownSignalOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): void {
  onShutdownSignal(stop, exit, options);
  if (!startedByNpm(env)) return;
  const parent = process.ppid;
  const watch = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(watch);
    process.kill(process.pid, 'SIGTERM');
  }, ORPHAN_CHECK_MS);
  // The watch alone never keeps the program alive.
  watch.unref();
}

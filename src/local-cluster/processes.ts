// Long-running child processes (etcd, kube-apiserver, ...) that must never outlive the process that
// started them. Each runs in its own process group under a tiny watchdog shell that stops it when
// the parent disappears, even if the parent was killed without a chance to clean up.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';

const live = new Set<ManagedProcess>();

// Last resort for an abrupt exit of this process: signal every group synchronously.
process.once('exit', () => {
  for (const child of live) child.killGroup('SIGKILL');
});

// The watchdog: runs the command, forwards TERM/INT, and stops the command when the parent pid is gone.
const WATCHDOG = [
  '"$@" & child=$!',
  'trap \'kill -TERM "$child" 2>/dev/null; wait "$child"; exit $?\' TERM INT',
  'while kill -0 "$WATCH_PARENT" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 1; done',
  'if kill -0 "$child" 2>/dev/null; then kill -TERM "$child"; fi',
  'wait "$child"',
].join('\n');

export interface ManagedProcessOptions {
  name: string;
  command: string;
  args: string[];
  logFile: string;
  env?: NodeJS.ProcessEnv;
}

export class ManagedProcess {
  readonly name: string;
  readonly logFile: string;
  private readonly child: ChildProcess;
  private readonly log: WriteStream;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly exited: Promise<void>;

  constructor(options: ManagedProcessOptions) {
    this.name = options.name;
    this.logFile = options.logFile;
    this.log = createWriteStream(options.logFile, { flags: 'a' });
    this.child = spawn('bash', ['-c', WATCHDOG, 'watchdog', options.command, ...options.args], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...(options.env ?? process.env), WATCH_PARENT: String(process.pid) },
    });
    this.child.stdout?.pipe(this.log, { end: false });
    this.child.stderr?.pipe(this.log, { end: false });
    this.exited = once(this.child, 'exit').then(([code, signal]) => {
      this.exitInfo = { code: code as number | null, signal: signal as NodeJS.Signals | null };
      live.delete(this);
    });
    live.add(this);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Whether the process has exited, with how. */
  get exit(): { code: number | null; signal: NodeJS.Signals | null } | undefined {
    return this.exitInfo;
  }

  killGroup(signal: NodeJS.Signals): void {
    if (this.child.pid === undefined || this.exitInfo) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {
      // The group is already gone: nothing left to stop.
    }
  }

  /** SIGTERM to the whole group, then SIGKILL if it is still there after `graceMs`. */
  async stop(graceMs = 5_000): Promise<void> {
    if (!this.exitInfo) {
      this.killGroup('SIGTERM');
      const timer = setTimeout(() => this.killGroup('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    // The watchdog is gone; make sure nothing else of the group survived it.
    this.killGroup('SIGKILL');
    await new Promise<void>((resolve) => this.log.end(resolve));
  }
}

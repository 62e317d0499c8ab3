// Long-running child processes (etcd, kube-apiserver, ...) that must never outlive the process that
// started them. Each runs in its own process group under a tiny watchdog shell that stops it when
// the parent disappears, even if the parent was killed without a chance to clean up.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';

const live = new Set<ManagedProcess>();

/** Signals the process group of every ManagedProcess still running, synchronously. */
export function signalAllManaged(signal: NodeJS.Signals = 'SIGKILL'): void {
  for (const child of live) child.killGroup(signal);
}

// Last resort for an abrupt exit of this process: signal every group synchronously.
process.once('exit', () => signalAllManaged('SIGKILL'));

// The watchdog: runs the command, forwards TERM/INT to it (once: the command alone gets the signal,
// as a container's main process does), notices at once when it exits, and stops it when the
// parent pid is gone (SIGTERM, then SIGKILL to the whole group after 10 s: a command that hangs in
// its shutdown, as kube-apiserver does once etcd is gone, must not outlive its parent for long).
// WATCH_PARENT is removed from the command's environment so it only sees what it was given;
// 2>/dev/null keeps bash's job reports ("Terminated") out of the command's log.
const WATCHDOG = [
  'parent="$WATCH_PARENT"; unset WATCH_PARENT',
  '"$@" & child=$!',
  'tick=',
  'trap \'kill -TERM "$child" $tick 2>/dev/null; wait "$child" 2>/dev/null; s=$?; wait $tick 2>/dev/null; exit $s\' TERM INT',
  'while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do',
  '  sleep 1 & tick=$!',
  '  wait -n "$child" "$tick" 2>/dev/null',
  '  kill "$tick" 2>/dev/null',
  'done',
  'if kill -0 "$child" 2>/dev/null; then',
  '  kill -TERM "$child"; n=0',
  '  while kill -0 "$child" 2>/dev/null && [ "$n" -lt 50 ]; do sleep 0.2; n=$((n+1)); done',
  '  if kill -0 "$child" 2>/dev/null; then kill -KILL 0; fi',
  'fi',
  'wait "$child" 2>/dev/null',
].join('\n');

export interface ManagedProcessOptions {
  name: string;
  command: string;
  args: string[];
  logFile: string;
  env?: NodeJS.ProcessEnv;
  /** Working directory of the command; the parent's when omitted. */
  cwd?: string;
}

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class ManagedProcess {
  readonly name: string;
  readonly logFile: string;
  private readonly child: ChildProcess;
  private readonly log: WriteStream;
  private exitInfo: ProcessExit | undefined;
  private readonly exited: Promise<void>;
  private readonly outputClosed: Promise<void>;
  private logFailure: Error | undefined;
  /** Resolves once the process has exited (it never rejects), with how it exited. */
  readonly whenExited: Promise<ProcessExit>;

  constructor(options: ManagedProcessOptions) {
    this.name = options.name;
    this.logFile = options.logFile;
    this.log = createWriteStream(options.logFile, { flags: 'a' });
    // A log file that cannot be written must not take the parent down; it is reported by logError.
    this.log.on('error', (error) => {
      this.logFailure = error;
    });
    this.child = spawn('bash', ['-c', WATCHDOG, 'watchdog', options.command, ...options.args], {
      detached: true,
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...(options.env ?? process.env), WATCH_PARENT: String(process.pid) },
    });
    this.child.stdout?.pipe(this.log, { end: false });
    this.child.stderr?.pipe(this.log, { end: false });
    this.exited = once(this.child, 'exit').then(([code, signal]) => {
      this.exitInfo = { code: code as number | null, signal: signal as NodeJS.Signals | null };
      live.delete(this);
    });
    // 'close' comes after 'exit' once stdout and stderr are drained into the log.
    this.outputClosed = once(this.child, 'close').then(() => {});
    this.whenExited = this.exited.then(() => this.exitInfo as ProcessExit);
    live.add(this);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Whether the process has exited, with how. */
  get exit(): ProcessExit | undefined {
    return this.exitInfo;
  }

  /** Why the log file could not be written, if it could not. */
  get logError(): Error | undefined {
    return this.logFailure;
  }

  killGroup(signal: NodeJS.Signals): void {
    if (this.exitInfo) return;
    this.signalGroup(signal);
  }

  private signalWatchdog(signal: NodeJS.Signals): void {
    if (this.child.pid === undefined || this.exitInfo) return;
    try {
      process.kill(this.child.pid, signal);
    } catch {
      // The watchdog already exited: the exit handler takes it from here.
    }
  }

  private signalGroup(signal: NodeJS.Signals): void {
    if (this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {
      // The group is already gone: nothing left to stop.
    }
  }

  /**
   * SIGTERM to the command (through the watchdog, which forwards it once), then SIGKILL to the
   * whole group if it is still there after `graceMs`. Also the way to
   * release a process that exited by itself: whatever it left in its group is killed and the log
   * file is closed once its output is drained.
   */
  async stop(graceMs = 5_000): Promise<void> {
    if (!this.exitInfo) {
      this.signalWatchdog('SIGTERM');
      const timer = setTimeout(() => this.killGroup('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    // The watchdog is gone; make sure nothing else of the group survived it.
    this.signalGroup('SIGKILL');
    let drainTimer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.outputClosed,
      new Promise<void>((resolve) => {
        drainTimer = setTimeout(resolve, 2_000);
      }),
    ]);
    clearTimeout(drainTimer);
    this.child.stdout?.unpipe(this.log);
    this.child.stderr?.unpipe(this.log);
    if (!this.log.writableEnded) await new Promise<void>((resolve) => this.log.end(resolve));
  }
}

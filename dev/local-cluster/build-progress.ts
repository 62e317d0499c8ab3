// What a person sees while the first `npm start` builds the Kubernetes binaries from Go modules (6
// to 12 minutes on 2 cores). The build scripts (tools/cluster/build.sh, tools/kubectl/build.sh) say
// one "[x-build] ..." line per step and Go itself says nothing while it compiles, so on its own the
// terminal stays silent for minutes. Run with `go -x` tracing (GOFLAGS=-x, which changes no build
// output and no cache key), the scripts' stderr also carries every module fetch and every compiler
// run; this turns that into a few readable lines: the step and its place in the plan, modules
// downloaded and packages compiled so far, elapsed time, and what remains. The trace itself is
// dropped; any other line (a Go error, a script's own message) is passed on as it is.

/** One step of the plan: a script's module download, or one binary. */
interface Step {
  label: string;
  binary: string | undefined;
  startedAt: number;
  packages: number;
  modules: number;
}

export interface BuildProgressOptions {
  /** Where each readable line goes. */
  say: (line: string) => void;
  /** The binaries the build makes, in build order ("what remains" is this less what is done). */
  plan: readonly string[];
  /** Milliseconds, monotonic; injectable for tests. */
  now?: () => number;
}

/** "[cluster-build] building kube-apiserver v1.37.2 (...)": the script's own step lines. */
const SCRIPT_LINE = /^\[([\w-]+)-build\] (.*)$/;
const BUILDING = /^building (\S+)/;
const DOWNLOADING = /^downloading /;
const DONE = /^done in /;
/** go -x: one line per finished fetch of a module's zip from the module proxy. */
const MODULE_FETCHED = /^# get \S+\/@v\/[^/\s]+\.zip: 200 /;
/** go -x: one compiler run per package that was not in the build cache. */
const COMPILE = /\/compile -o \S+ .*?-p (\S+)/;
/** go -x: the rest of its trace (commands it runs, files it writes, fetches); never for a person. */
const TRACE = [
  /^# (get|import config|cd) /,
  /^WORK=/,
  /^(mkdir|cd|cat|echo|rm|mv|cp|touch|chmod|ln) /,
  /^(packagefile|packageshlib|importmap|modinfo|importpath|godebug) /,
  /^EOF$/,
  /^\//,
  /^\$WORK/,
  /^go tool /,
  /^[A-Z_]+=\S* \//,
  // cgo packages (runtime/cgo, net) when the Go build cache is cold: the C compiler's runs, with or
  // without the environment go sets for them.
  /^([A-Z_]+='[^']*' )+\S/,
  /^(gcc|clang|cc|g\+\+|ar) /,
];
const HEREDOC_START = /<< 'EOF'/;

/** 75 s as "1:15"; an hour or more as "1:02:03". */
export function clockTime(milliseconds: number): string {
  const total = Math.max(0, Math.floor(milliseconds / 1000));
  const [h, m, s] = [Math.floor(total / 3600), Math.floor((total % 3600) / 60), total % 60];
  const two = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
}

const plural = (n: number, word: string) => `${n.toLocaleString('en-US')} ${word}${n === 1 ? '' : 's'}`;

/** "a", "a and b", "a, b and c". */
export function listWords(words: readonly string[]): string {
  if (words.length <= 1) return words.join('');
  return `${words.slice(0, -1).join(', ')} and ${words.at(-1)}`;
}

export class BuildProgress {
  readonly #say: (line: string) => void;
  readonly #plan: readonly string[];
  readonly #now: () => number;
  readonly #startedAt: number;
  /** Binaries finished (the next step began, or the script said done). */
  readonly #built: string[] = [];
  #step: Step | undefined;
  #inHeredoc = false;
  #modules = 0;
  #packages = 0;
  /** The last lines that were not trace, for an error message when the build fails. */
  #tail: string[] = [];

  constructor(options: BuildProgressOptions) {
    this.#say = options.say;
    this.#plan = options.plan;
    this.#now = options.now ?? (() => performance.now());
    this.#startedAt = this.#now();
  }

  /** Feeds one line of a build script's stderr. */
  line(raw: string): void {
    const line = raw.trimEnd();
    if (this.#inHeredoc) {
      if (line === 'EOF') this.#inHeredoc = false;
      return;
    }
    if (!line.trim()) return;
    if (MODULE_FETCHED.test(line)) {
      this.#modules += 1;
      if (this.#step) this.#step.modules += 1;
      return;
    }
    const compile = COMPILE.exec(line);
    if (compile) {
      this.#packages += 1;
      if (this.#step) this.#step.packages += 1;
      return;
    }
    if (HEREDOC_START.test(line)) {
      this.#inHeredoc = true;
      return;
    }
    if (TRACE.some((pattern) => pattern.test(line))) return;
    this.#tail = [...this.#tail, line].slice(-40);
    const script = SCRIPT_LINE.exec(line);
    if (!script) {
      this.#say(`${this.#stamp()} ${line}`);
      return;
    }
    const message = script[2] ?? '';
    const building = BUILDING.exec(message);
    if (building?.[1]) this.#begin(building[1], message);
    else if (DOWNLOADING.test(message)) this.#begin(undefined, message);
    else if (DONE.test(message)) this.#finishStep();
    else this.#say(`${this.#stamp()} ${message}`);
  }

  /** A line that says the build is alive and where it is; call it every half minute or so. */
  heartbeat(): void {
    const step = this.#step;
    if (!step) return;
    const counts = [
      ...(step.modules > 0 ? [`${plural(step.modules, 'module')} downloaded`] : []),
      ...(step.packages > 0 ? [`${plural(step.packages, 'package')} compiled`] : []),
    ];
    const progress = counts.length ? `${counts.join(', ')} so far` : 'working';
    this.#say(
      `${this.#stamp()} ${step.label}: ${progress} (${clockTime(this.#now() - step.startedAt)} on this step)`,
    );
  }

  /** The closing line once every script has finished. */
  finished(): void {
    this.#finishStep();
    if (this.#built.length === 0) return;
    this.#say(
      `${this.#stamp()} built ${listWords(this.#built)} in ${clockTime(this.#now() - this.#startedAt)} ` +
        `(${plural(this.#packages, 'package')} compiled, ${plural(this.#modules, 'module')} downloaded); ` +
        'later runs reuse them',
    );
  }

  /** The last lines that were not go's trace: what to show when a build fails. */
  tail(): string {
    return this.#tail.join('\n');
  }

  #begin(binary: string | undefined, message: string): void {
    this.#finishStep();
    // The plan's order is the scripts' order: what comes after this binary is what remains (what
    // comes before it is built, now or by an earlier run).
    const index = binary === undefined ? -1 : this.#plan.indexOf(binary);
    const left = this.#plan.slice(index + 1);
    const place =
      index >= 0
        ? ` [${index + 1} of ${this.#plan.length}${left.length ? `; then ${listWords(left)}` : ''}]`
        : '';
    this.#step = {
      label: binary ? `building ${binary}` : 'downloading Go modules',
      binary,
      startedAt: this.#now(),
      packages: 0,
      modules: 0,
    };
    this.#say(`${this.#stamp()} ${message}${place}`);
  }

  #finishStep(): void {
    if (this.#step?.binary) this.#built.push(this.#step.binary);
    this.#step = undefined;
  }

  #stamp(): string {
    return `[${clockTime(this.#now() - this.#startedAt)}]`;
  }
}

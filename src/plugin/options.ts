// The plugin's command line: a command, its object and flags, spelled as kubectl spells them
// (`--kubeconfig`, `--context`, `-n/--namespace`, `-A/--all-namespaces`, `-o/--output`), so a
// person who knows kubectl knows these. kubectl hands a plugin every argument after its name (and
// refuses flags before it: "flags cannot be placed before plugin name"), so these are the plugin's
// own to parse; they are taken anywhere on the line, before or after the command and its object.
// Parsed with the one CLI parser of the package (src/lib/cli.ts), which names the flag and its
// variable in every complaint.
import { type FlagSpecs, flagError, parseFlags } from '../lib/cli.ts';
import { parseDurationField } from '../lib/duration.ts';
import { isCodedError } from '../lib/errors.ts';
import { RECOVERY_REQUEST_ID_PATTERN } from '../operator/api/constants.ts';
import { isDnsLabel } from '../operator/api/validation.ts';
import { untrustedText } from '../operator/reconcile/untrusted-text.ts';

/**
 * What the person typed, as an error message may quote it: cleaned as cluster text is, so a value
 * with a terminal escape (`--request-id $'id\x1b[31m'`) is not replayed to the terminal.
 */
function typed(value: unknown): string {
  return untrustedText(value, 200);
}

export const COMMANDS = ['status', 'diagnose', 'recover', 'token', 'report'] as const;
export type Command = (typeof COMMANDS)[number];

export const OUTPUT_FORMATS = ['table', 'wide', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** The flags every command takes: where the cluster is, which namespace, how to print. */
export const COMMON_FLAGS: FlagSpecs = {
  kubeconfig: {
    description: 'Path to the kubeconfig file (default: KUBECONFIG, then ~/.kube/config), as kubectl.',
  },
  context: { description: 'The kubeconfig context to use (default: its current context), as kubectl.' },
  namespace: {
    short: 'n',
    description: "The Connector's namespace (default: the context's namespace, else default), as kubectl.",
  },
  output: { short: 'o', description: 'Output format: table (default), wide, json or yaml.' },
  'operator-namespace': {
    env: 'VAULTPAM_OPERATOR_NAMESPACE',
    default: 'vaultpam-system',
    description:
      "Where the operator runs: its logs, and the credential Secrets and CA ConfigMaps of ClusterControlPlanes (the operator's --cluster-resource-namespace).",
  },
  'control-plane-url': {
    env: 'VAULTPAM_CONTROL_PLANE_URL',
    description:
      "The operator's default control plane (its --control-plane-url), for Connectors without spec.controlPlaneRef.",
  },
  'control-plane-ca-file': {
    env: 'VAULTPAM_CONTROL_PLANE_CA_FILE',
    description: "File with the default control plane's CA bundle (the operator's --control-plane-ca-file).",
  },
  'credential-secret': {
    env: 'VAULTPAM_CREDENTIAL_SECRET',
    description:
      "The default control plane's admin credential Secret, <namespace>/<name>[/<key>] (the operator's --credential-secret); read with your own rights.",
  },
};

/** Each command's own flags. */
const COMMAND_FLAGS: Record<Command, FlagSpecs> = {
  status: {
    'all-namespaces': { short: 'A', boolean: true, description: 'List Connectors of every namespace.' },
  },
  diagnose: {},
  recover: {
    'request-id': {
      description:
        'The recovery request id written to spec.recovery.requestId (default: recover-<UTC time>); an id runs once, ever.',
    },
    'dry-run': {
      boolean: true,
      description: 'Say what would happen (the API server and the control plane are asked, nothing changes).',
    },
    timeout: {
      default: '15m',
      description: 'How long to follow the recovery before leaving it to run on (it does not stop).',
    },
  },
  token: {},
  report: {
    file: {
      short: 'f',
      description: 'Where to write the bundle (default: vaultpam-report-<ns>-<name>-<time>.tar.gz).',
    },
    tail: { default: '500', description: 'Log lines to take from each container and from the operator.' },
  },
};

/** Which output formats each command can print. */
const FORMATS: Record<Command, readonly OutputFormat[]> = {
  status: OUTPUT_FORMATS,
  diagnose: ['table', 'json', 'yaml'],
  recover: ['table', 'json', 'yaml'],
  token: ['table', 'json', 'yaml'],
  report: ['table'],
};

export interface DefaultControlPlaneFlags {
  url?: string;
  caFile?: string;
  credentialSecret?: { namespace: string; name: string; key: string };
}

export interface PluginOptions {
  command: Command;
  /** The Connector's name, for the commands that take one. */
  name?: string;
  kubeconfig?: string;
  context?: string;
  namespace?: string;
  allNamespaces: boolean;
  output: OutputFormat;
  operatorNamespace: string;
  defaultControlPlane: DefaultControlPlaneFlags;
  requestId?: string;
  dryRun: boolean;
  timeoutMs: number;
  file?: string;
  tailLines: number;
}

export type ParsedCommandLine = { help: true; command?: Command } | { help: false; options: PluginOptions };

/** The flags `command` takes (the common ones and its own). */
export function flagsOf(command: Command): FlagSpecs {
  return { ...COMMON_FLAGS, ...COMMAND_FLAGS[command] };
}

const isCommand = (value: string | undefined): value is Command =>
  (COMMANDS as readonly string[]).includes(value ?? '');

function allFlags(): FlagSpecs {
  return Object.assign({}, COMMON_FLAGS, ...Object.values(COMMAND_FLAGS));
}

function credentialSecretFlag(value: string | undefined): DefaultControlPlaneFlags['credentialSecret'] {
  if (value === undefined || value === '') return undefined;
  const [namespace, name, key, ...rest] = value.split('/');
  if (!namespace || !name || rest.length > 0) {
    throw flagError(
      `--credential-secret (env VAULTPAM_CREDENTIAL_SECRET): "${typed(value)}" must be <namespace>/<name>[/<key>], e.g. vaultpam-system/vaultpam-operator-credential`,
    );
  }
  return { namespace, name, key: key || 'credential' };
}

/**
 * A namespace flag's value, given or not. It goes into the API paths the plugin asks
 * (/namespaces/<ns>/...), so only a namespace name passes: "vaultpam/x" would ask about another
 * path, and an empty value (`-n "$NS"` with NS unset) would quietly mean the default namespace.
 */
function namespaceFlag(value: string | undefined, flag: string): string | undefined {
  if (value === undefined || isDnsLabel(value)) return value;
  throw flagError(
    `${flag}: "${typed(value)}" is not a namespace name: a namespace name is a DNS label (RFC 1123), at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit, e.g. team-a`,
  );
}

function wholeNumber(value: string | undefined, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw flagError(`--${flag}: "${typed(value)}" must be a whole number of at least 1`);
  return n;
}

/** The shared parser's answer; its complaints (which quote the flag as typed) cleaned. */
function cleanedFlags<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (isCodedError(error, 'INVALID_FLAGS')) throw flagError(untrustedText(error.message, 2048));
    throw error;
  }
}

/**
 * Reads the command line. The command comes first among the arguments that are not flags, its
 * object (the Connector's name) second; flags may stand anywhere.
 */
export function parseCommandLine(argv: string[], env: NodeJS.ProcessEnv): ParsedCommandLine {
  // A first pass with every flag finds the command; the second holds the line to that command's flags.
  const first = cleanedFlags(() => parseFlags(argv, allFlags(), env, { allowPositionals: true }));
  const [command, ...objects] = first.positionals;
  if (command === undefined || command === 'help') {
    const about = objects[0];
    return { help: true, ...(isCommand(about) ? { command: about } : {}) };
  }
  if (!isCommand(command)) {
    throw flagError(
      `unknown command "${typed(command)}"; the commands are ${COMMANDS.join(', ')} (run with --help)`,
    );
  }
  const parsed = cleanedFlags(() => parseFlags(argv, flagsOf(command), env, { allowPositionals: true }));
  if (parsed.help) return { help: true, command };
  const v = parsed.values;
  const namespace = namespaceFlag(v.namespace, '-n/--namespace');
  const operatorNamespace = namespaceFlag(
    v['operator-namespace'],
    '--operator-namespace (env VAULTPAM_OPERATOR_NAMESPACE)',
  );
  const name = objects[0];
  if (objects.length > 1) {
    throw flagError(
      `${command} takes one Connector name; got ${objects.length}: ${typed(objects.join(' '))}`,
    );
  }
  if (command !== 'status' && name === undefined) {
    throw flagError(`${command} needs the Connector's name: ${command} NAME [-n NAMESPACE]`);
  }
  const allNamespaces = parsed.booleans['all-namespaces'] === true;
  if (allNamespaces && name !== undefined) {
    throw flagError('-A/--all-namespaces lists Connectors; with a NAME, give its namespace with -n instead');
  }
  const output = (v.output ?? 'table') as OutputFormat;
  if (!FORMATS[command].includes(output)) {
    throw flagError(
      `-o/--output: "${typed(v.output)}" is not a format of ${command}; use ${FORMATS[command].join(', ')}`,
    );
  }
  const requestId = v['request-id'];
  if (requestId !== undefined && !RECOVERY_REQUEST_ID_PATTERN.test(requestId)) {
    throw flagError(
      `--request-id: "${typed(requestId)}" must be 1 to 63 letters, digits, '.', '_' or '-', starting and ending with a letter or digit, e.g. incident-4711`,
    );
  }
  const timeoutMs = parseDurationField(v.timeout ?? '15m', '--timeout', { allowZero: false, timer: true });
  if (typeof timeoutMs !== 'number') throw flagError(untrustedText(timeoutMs.problem, 2048));
  const url = v['control-plane-url'];
  if (url !== undefined && !url.startsWith('https://')) {
    throw flagError(
      `--control-plane-url (env VAULTPAM_CONTROL_PLANE_URL): "${typed(url)}" must be an https:// URL`,
    );
  }
  const credentialSecret = credentialSecretFlag(v['credential-secret']);
  return {
    help: false,
    options: {
      command,
      ...(name !== undefined ? { name } : {}),
      ...(v.kubeconfig ? { kubeconfig: v.kubeconfig } : {}),
      ...(v.context ? { context: v.context } : {}),
      ...(namespace !== undefined ? { namespace } : {}),
      allNamespaces,
      output,
      operatorNamespace: operatorNamespace ?? 'vaultpam-system',
      defaultControlPlane: {
        ...(url ? { url } : {}),
        ...(v['control-plane-ca-file'] ? { caFile: v['control-plane-ca-file'] } : {}),
        ...(credentialSecret ? { credentialSecret } : {}),
      },
      ...(requestId !== undefined ? { requestId } : {}),
      dryRun: parsed.booleans['dry-run'] === true,
      timeoutMs,
      ...(v.file ? { file: v.file } : {}),
      tailLines: command === 'report' ? wholeNumber(v.tail, 'tail') : 500,
    },
  };
}

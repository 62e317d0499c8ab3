// The plugin's one entry: reads the command line, loads the person's kubeconfig, runs the command,
// and turns what went wrong into one line on stderr and an exit code (context.ts, EXIT). Nothing
// here reads the process's globals: src/bin/kubectl-vaultpam.ts hands in argv, the environment and
// the streams, so tests run the same code.
import { helpText } from '../lib/cli.ts';
import { errorMessage, isCodedError } from '../lib/errors.ts';
import { untrustedText } from '../operator/reconcile/untrusted-text.ts';
import { diagnoseCommand } from './commands/diagnose.ts';
import { recoverCommand } from './commands/recover.ts';
import { reportCommand } from './commands/report.ts';
import { statusCommand } from './commands/status.ts';
import { tokenCommand } from './commands/token.ts';
import { type CommandContext, EXIT, type PluginIO } from './context.ts';
import { KubeApi } from './kube-api.ts';
import { loadClusterTarget } from './kube-config.ts';
import { COMMON_FLAGS, type Command, flagsOf, parseCommandLine } from './options.ts';

const RUN: Record<Command, (ctx: CommandContext) => Promise<number>> = {
  status: statusCommand,
  diagnose: diagnoseCommand,
  recover: recoverCommand,
  token: tokenCommand,
  report: reportCommand,
};

const ABOUT: Record<Command, [usage: string, summary: string]> = {
  status: [
    'status [NAME] [-A] [-o table|wide|json|yaml]',
    "Connectors with phase, mode, last heartbeat, token expiry, diagnosis and recovery step; for one Connector, the full report (conditions, owned objects, pod, the control plane's view, last audit entries).",
  ],
  diagnose: [
    'diagnose NAME [-o json|yaml]',
    'Walks the connector-offline runbook for one Connector and prints each check with its result and the next step. Exit 0 when healthy, 1 when not, 3 when it could not look.',
  ],
  recover: [
    'recover NAME [--request-id ID] [--dry-run] [--timeout 15m]',
    'Asks for a guided recovery (spec.recovery.requestId, as GitOps does), follows it step by step and prints the evidence. Refuses when none is needed or one is running.',
  ],
  token: [
    'token NAME [-o json|yaml]',
    "Prints the live enrollment token of a Connector with an adopted workload (spec.workloadRef), to stdout only: the operator's while it is live (the same one again on every call), else one minted the way the operator mints.",
  ],
  report: [
    'report NAME [-f FILE] [--tail 500]',
    "Writes a redacted .tar.gz for a support ticket: status, Events, owned objects, pod and operator logs, the control plane's record and audit entries.",
  ],
};

export function usage(program: string, command?: Command): string {
  if (command) {
    const [line, summary] = ABOUT[command];
    return helpText(`${program} ${line}`, summary, flagsOf(command)).replace(' [flags]', '');
  }
  const lines = [
    `Usage: ${program} COMMAND [NAME] [flags]`,
    '',
    'Look after VaultPAM Connectors the way the connector runbook says, with your own Kubernetes rights.',
    '',
    'Commands:',
    ...Object.values(ABOUT).map(([line, summary]) => `  ${line}\n      ${summary}`),
    '',
    `Flags of every command (${program} COMMAND --help lists a command's own):`,
    ...Object.entries(COMMON_FLAGS).map(
      ([name, spec]) =>
        `  ${spec.short ? `-${spec.short}, ` : ''}--${name}\n      ${spec.description}${spec.env ? ` (env ${spec.env})` : ''}`,
    ),
    '',
    'Exit codes: 0 done (diagnose: healthy); 1 the answer is no (unhealthy, refused, recovery failed, no such Connector); 2 bad command line; 3 could not look.',
  ];
  return lines.join('\n');
}

/** The exit code of what went wrong: a refusal and a Connector that does not exist are answers (1). */
export function exitCodeOf(error: unknown): number {
  if (!isCodedError(error)) return EXIT.cannot;
  if (error.code === 'INVALID_FLAGS') return EXIT.usage;
  if (error.code === 'REFUSED' || error.code === 'NOT_FOUND') return EXIT.no;
  return EXIT.cannot;
}

/** Longest error line printed: room for an API server's causes, bounded all the same. */
const ERROR_TEXT_MAX = 4096;

/**
 * The one line on stderr. Error messages quote what the person typed (a flag's value, a name) and
 * what the cluster said; both are cleaned here as cluster text is (untrustedText), so an escape
 * sequence typed or pasted into an argument never reaches the terminal as one.
 */
export function errorLine(error: unknown): string {
  return `error: ${untrustedText(errorMessage(error), ERROR_TEXT_MAX)}\n`;
}

export async function runPlugin(argv: string[], io: PluginIO): Promise<number> {
  try {
    const parsed = parseCommandLine(argv, io.env);
    if (parsed.help) {
      io.stdout.write(`${usage(io.program, parsed.command)}\n`);
      return EXIT.ok;
    }
    const { options } = parsed;
    const target = loadClusterTarget(options, io.env);
    const ctx: CommandContext = { io, options, api: new KubeApi(target.kc), namespace: target.namespace };
    return await RUN[options.command](ctx);
  } catch (error) {
    io.stderr.write(errorLine(error));
    return exitCodeOf(error);
  }
}

// What every command is handed: where to print, the parsed command line, the person's API client
// and the namespace in effect; and the plugin's exit codes, one meaning each, so scripts can tell
// "unhealthy" from "could not look".
import { CodedError } from '../lib/errors.ts';
import type { Connector } from '../operator/api/types.ts';
import { describeApiError, httpStatusOf } from '../operator/runtime/api-errors.ts';
import type { KubeApi } from './kube-api.ts';
import type { PluginOptions } from './options.ts';
import type { Printer } from './output.ts';

export const EXIT = {
  /** Done; for diagnose: healthy. */
  ok: 0,
  /**
   * The answer is no: diagnose found it unhealthy, a recovery failed or was refused, a token
   * refused, the Connector does not exist (the API server answered: there is none, as kubectl get's 1).
   */
  no: 1,
  /** The command line is wrong. */
  usage: 2,
  /** Could not look: no kubeconfig, the API server refused or failed. */
  cannot: 3,
} as const;

export interface PluginIO {
  stdout: Printer;
  stderr: Printer;
  env: NodeJS.ProcessEnv;
  /** How the person called it: "kubectl vaultpam" as a kubectl plugin, else "vaultpam". */
  program: string;
  now(): Date;
}

export interface CommandContext {
  io: PluginIO;
  options: PluginOptions;
  api: KubeApi;
  /** -n, else the kubeconfig context's namespace, else default. */
  namespace: string;
}

/** A refusal with its reason: the command ran and the answer is no (exit 1). */
export function refusal(message: string): CodedError {
  return new CodedError('REFUSED', message);
}

/** An API failure as a message naming what was asked (exit 3). */
export function apiFailure(what: string, error: unknown): CodedError {
  return new CodedError('API_ERROR', `cannot ${what}: ${describeApiError(error)}`, { cause: error });
}

/** The Connector, or why it cannot be had. */
export async function readConnector(ctx: CommandContext, name: string): Promise<Connector> {
  try {
    return await ctx.api.getConnector(ctx.namespace, name);
  } catch (error) {
    if (httpStatusOf(error) === 404) {
      throw new CodedError(
        'NOT_FOUND',
        `connector ${ctx.namespace}/${name} not found (${ctx.io.program} status -n ${ctx.namespace} lists them)`,
      );
    }
    throw apiFailure(`read Connector ${ctx.namespace}/${name}`, error);
  }
}

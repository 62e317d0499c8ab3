// Failing closed, when the runbook says a human or the operator must act: one log line naming the
// failure class, code, reason and next step, and the termination message where Kubernetes picks it
// up (the container's lastState, which the operator reads). The exit code is the failure's own.
import { writeFile } from 'node:fs/promises';
import { errorMessage } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import { type AgentFailure, formatTerminationMessage, scrubSecrets } from './failure.ts';

/** Writes the termination message; rejects with the file system error so the caller can log it. */
export async function writeTerminationMessage(path: string, failure: AgentFailure): Promise<void> {
  await writeFile(path, formatTerminationMessage(failure), { mode: 0o644 });
}

/** The fail-closed log line and the termination message; a message that cannot be written is a warning. */
export async function reportFailClosed(
  failure: AgentFailure,
  logger: Logger,
  terminationLog: string,
): Promise<void> {
  const reason = scrubSecrets(failure.message);
  logger.error(
    {
      failureClass: failure.failureClass,
      code: failure.code,
      exitCode: failure.exitCode,
      nextStep: failure.nextStep,
    },
    `fail closed: ${failure.failureClass} (${failure.code}): ${reason}. Next step: ${failure.nextStep}`,
  );
  try {
    await writeTerminationMessage(terminationLog, failure);
  } catch (error) {
    logger.warn(
      { path: terminationLog, err: errorMessage(error) },
      'could not write the termination message file',
    );
  }
}

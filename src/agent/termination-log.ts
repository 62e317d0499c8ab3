// Writes the fail-closed reason where Kubernetes picks it up as the container's termination message.
import { writeFile } from 'node:fs/promises';
import { type AgentFailure, formatTerminationMessage } from './failure.ts';

/** Writes the termination message; rejects with the file system error so the caller can log it. */
export async function writeTerminationMessage(path: string, failure: AgentFailure): Promise<void> {
  await writeFile(path, formatTerminationMessage(failure), { mode: 0o644 });
}

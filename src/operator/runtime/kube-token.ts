// A bearer token kept in a file that changes under the process: the kubelet rotates a pod's
// projected ServiceAccount token (it expires within hours), and a kubeconfig's tokenFile may be
// rewritten by whatever issues it. As client-go does, the file is read again once the value in hand
// is a minute old, and at once when the API server refused it (401): a token that expired between
// two reads costs one refused request, not a minute of them. The token is never logged or put in
// an error.
import { readFile } from 'node:fs/promises';
import { type Clock, systemClock } from '../../lib/clock.ts';
import { CodedError, fsErrorCode } from '../../lib/errors.ts';

/** How long a token read from the file is used before the file is read again. */
export const TOKEN_FILE_REFRESH_MS = 60_000;

export interface TokenFileOptions {
  refreshMs?: number;
  clock?: Clock;
}

export class TokenFile {
  readonly path: string;
  private readonly refreshMs: number;
  private readonly clock: Clock;
  private value: string | undefined;
  private readAtMs = Number.NEGATIVE_INFINITY;
  private reading: Promise<string> | undefined;

  constructor(path: string, options: TokenFileOptions = {}) {
    this.path = path;
    this.refreshMs = options.refreshMs ?? TOKEN_FILE_REFRESH_MS;
    this.clock = options.clock ?? systemClock;
  }

  /** The token to send now: the one in hand while it is fresh, else the file's current content. */
  current(): Promise<string> {
    if (this.value !== undefined && this.clock.now().getTime() - this.readAtMs < this.refreshMs) {
      return Promise.resolve(this.value);
    }
    this.reading ??= this.read().finally(() => {
      this.reading = undefined;
    });
    return this.reading;
  }

  /** The API server refused the token: the next request reads the file again. */
  refused(): void {
    this.readAtMs = Number.NEGATIVE_INFINITY;
  }

  private async read(): Promise<string> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      // The kubelet swaps the file atomically, so a failed read is rare and brief: keep the token in hand.
      if (this.value !== undefined) return this.value;
      throw new CodedError(
        'KUBE_TOKEN_UNREADABLE',
        `cannot read the token file ${this.path}: ${fsErrorCode(error)}`,
        {
          temporary: true,
        },
      );
    }
    const token = text.trim();
    if (token === '') {
      if (this.value !== undefined) return this.value;
      throw new CodedError('KUBE_TOKEN_UNREADABLE', `the token file ${this.path} is empty`, {
        temporary: true,
      });
    }
    this.value = token;
    this.readAtMs = this.clock.now().getTime();
    return token;
  }
}

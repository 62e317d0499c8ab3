// Following a watch's answer: newline-delimited JSON events ({type, object}: ADDED, MODIFIED,
// DELETED, BOOKMARK, or ERROR with a metav1.Status, after which the server closes the stream),
// handed over one by one as they arrive. The watch ends exactly once: when the server closes it (a
// watch's own timeout), when nothing has arrived for the inactivity timeout (a dead connection
// sends nothing, and bookmarks or events keep a live one busy), on a broken connection or a line
// that is not an event. abort() ends it quietly: after it, no event and no end is reported.

import { CodedError } from '../../lib/errors.ts';
import type { StreamAnswer } from '../../lib/https-json.ts';

/** Nothing for this long ends the watch (as client-node's Watch does); the caller opens a new one. */
export const DEFAULT_WATCH_INACTIVITY_MS = 30_000;
/** One event larger than this (an object is at most about 1.5 MiB in etcd) ends the watch. */
const MAX_EVENT_BYTES = 64 * 1024 * 1024;

export interface WatchHandlers {
  /** One event; `object` is as the server sent it (a Status for ERROR). */
  onEvent(type: string, object: unknown): void;
  /**
   * The watch ended by itself: undefined when the server closed it, an error named TimeoutError after
   * the inactivity timeout, else what broke it.
   */
  onEnd(error: Error | undefined): void;
}

export interface WatchStream {
  /** Ends the watch and its connection; nothing is reported after it. Safe to call more than once. */
  abort(): void;
}

export function followWatch(
  answer: StreamAnswer,
  handlers: WatchHandlers,
  inactivityMs = DEFAULT_WATCH_INACTIVITY_MS,
): WatchStream {
  let ended = false;
  let pending = '';
  let timer: NodeJS.Timeout | undefined;
  const finish = (error: Error | undefined) => {
    if (ended) return;
    ended = true;
    clearTimeout(timer);
    answer.abort();
    handlers.onEnd(error);
  };
  const armTimer = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const timedOut = new Error(`the watch received nothing for ${inactivityMs} ms`);
      timedOut.name = 'TimeoutError';
      finish(timedOut);
    }, inactivityMs);
    // A watch alone must not keep the process running.
    timer.unref();
  };
  const line = (text: string) => {
    if (text.trim() === '') return;
    let event: { type?: unknown; object?: unknown };
    try {
      event = JSON.parse(text);
    } catch {
      // A lost event cannot be told from a garbled one: end, so the caller resumes from what it has.
      finish(new CodedError('BAD_RESPONSE', 'the watch sent a line that is not JSON', { temporary: true }));
      return;
    }
    if (typeof event?.type !== 'string') {
      finish(new CodedError('BAD_RESPONSE', 'the watch sent an event without a type', { temporary: true }));
      return;
    }
    handlers.onEvent(event.type, event.object);
  };

  answer.body.setEncoding('utf8');
  answer.body.on('data', (chunk: string) => {
    if (ended) return;
    armTimer();
    pending += chunk;
    let newline = pending.indexOf('\n');
    while (newline !== -1 && !ended) {
      line(pending.slice(0, newline));
      pending = pending.slice(newline + 1);
      newline = pending.indexOf('\n');
    }
    if (pending.length > MAX_EVENT_BYTES) {
      finish(
        new CodedError('BAD_RESPONSE', `a watch event exceeds ${MAX_EVENT_BYTES} bytes`, { temporary: true }),
      );
    }
  });
  answer.body.on('end', () => {
    if (!ended) line(pending);
    finish(undefined);
  });
  answer.body.on('error', (error) => finish(error));
  answer.body.on('close', () => finish(new Error('the watch connection closed before the answer ended')));
  armTimer();
  return {
    abort() {
      ended = true;
      clearTimeout(timer);
      answer.abort();
    },
  };
}

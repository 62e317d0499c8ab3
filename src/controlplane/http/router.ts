// A small path router: routes are `METHOD /v1/connectors/{connectorId}` patterns. An unknown path
// answers 404 NOT_FOUND, a known path with another method 405 METHOD_NOT_ALLOWED.
import { cpError } from '../errors.ts';

export interface Match<R> {
  route: R;
  params: Record<string, string>;
}

interface Compiled<R> {
  route: R;
  method: string;
  segments: string[];
}

export class Router<R extends { method: string; path: string }> {
  private readonly compiled: Compiled<R>[];

  constructor(routes: readonly R[]) {
    this.compiled = routes.map((route) => ({ route, method: route.method, segments: route.path.split('/') }));
  }

  match(method: string, pathname: string): Match<R> {
    const parts = pathname.split('/');
    const allowed: string[] = [];
    for (const candidate of this.compiled) {
      const params = matchSegments(candidate.segments, parts);
      if (!params) continue;
      if (candidate.method === method) return { route: candidate.route, params };
      allowed.push(candidate.method);
    }
    // Names the route's methods, not the caller's path: messages never echo input.
    if (allowed.length > 0)
      throw cpError('METHOD_NOT_ALLOWED', `${method} is not allowed here; use ${allowed.join(' or ')}`);
    throw cpError('NOT_FOUND', 'no such route');
  }
}

function matchSegments(pattern: string[], parts: string[]): Record<string, string> | undefined {
  if (pattern.length !== parts.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const expected = pattern[i] as string;
    const actual = parts[i] as string;
    if (expected.startsWith('{') && expected.endsWith('}')) {
      if (actual.length === 0) return undefined;
      try {
        params[expected.slice(1, -1)] = decodeURIComponent(actual);
      } catch {
        return undefined;
      }
    } else if (expected !== actual) {
      return undefined;
    }
  }
  return params;
}

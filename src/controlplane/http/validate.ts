// Field checks for request bodies and query strings. Each failure is 400 INVALID_REQUEST naming
// the field (never echoing its value, which may be a secret).
import { isIP } from 'node:net';
import { CONNECTOR_ID_PATTERN } from '../../contract/agent-process.ts';
import { cpError } from '../errors.ts';

export { CONNECTOR_ID_PATTERN };

export type Json = Record<string, unknown>;

export function invalid(field: string, message: string): Error {
  return cpError('INVALID_REQUEST', `${field}: ${message}`, { field });
}

export function asObject(body: unknown): Json {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw cpError('INVALID_REQUEST', 'the body must be a JSON object', { field: '' });
  }
  return body as Json;
}

export function requireString(
  body: Json,
  field: string,
  options: { max?: number; pattern?: RegExp } = {},
): string {
  const value = body[field];
  if (typeof value !== 'string' || value.length === 0) throw invalid(field, 'a non-empty string is required');
  if (value.length > (options.max ?? 1024)) throw invalid(field, `at most ${options.max ?? 1024} characters`);
  if (options.pattern && !options.pattern.test(value)) throw invalid(field, 'has the wrong format');
  return value;
}

export function optionalString(body: Json, field: string, max = 1024): string | undefined {
  if (body[field] === undefined) return undefined;
  return requireString(body, field, { max });
}

export function optionalInteger(body: Json, field: string, min: number): number | undefined {
  const value = body[field];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw invalid(field, `an integer >= ${min} is required`);
  }
  return value;
}

/** A Kubernetes namespace name (an RFC 1123 label): where the owner of a record lives. */
export const NAMESPACE_PATTERN = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function namespaceName(value: string | undefined, field: string): string | undefined {
  if (value !== undefined && !NAMESPACE_PATTERN.test(value))
    throw invalid(field, 'must be a Kubernetes namespace name: at most 63 lowercase letters, digits and -');
  return value;
}

export function requireConnectorId(value: string): string {
  if (!CONNECTOR_ID_PATTERN.test(value))
    throw invalid('connectorId', `must match ${CONNECTOR_ID_PATTERN.source}`);
  return value;
}

/** Longer than any CIDR: an IPv6 address written out (45 characters) and /128. */
const CIDR_MAX = 49;

export function isCidr(value: string): boolean {
  // A zone (fe80::1%eth0) names an interface of one host, not a network, and isIP takes one of any
  // length: a PUT could fill its whole body with one.
  if (value.length > CIDR_MAX || value.includes('%')) return false;
  const [address, prefix, ...rest] = value.split('/');
  if (rest.length > 0 || !address || prefix === undefined || !/^\d{1,3}$/.test(prefix)) return false;
  const family = isIP(address);
  const bits = Number(prefix);
  return (family === 4 && bits <= 32) || (family === 6 && bits <= 128);
}

export function requireCidrList(body: Json, field: string): string[] {
  const value = body[field];
  if (!Array.isArray(value) || value.length > 256)
    throw invalid(field, 'an array of at most 256 CIDRs is required');
  for (const entry of value) {
    if (typeof entry !== 'string' || !isCidr(entry))
      throw invalid(field, 'every entry must be a CIDR like 10.0.0.0/8');
  }
  return value as string[];
}

/** Integer query parameter in [min, max], or the default when absent. */
export function queryInteger(
  params: URLSearchParams,
  name: string,
  options: { min: number; max: number; default?: number },
): number | undefined {
  const raw = params.get(name);
  if (raw === null || raw === '') return options.default;
  if (!/^-?\d+$/.test(raw)) throw invalid(name, 'an integer is required');
  const value = Number(raw);
  if (value < options.min || value > options.max)
    throw invalid(name, `must be between ${options.min} and ${options.max}`);
  return value;
}

/** Boolean query parameter: `true` or `false`; absent (or empty) is false. */
export function queryBoolean(params: URLSearchParams, name: string): boolean {
  const raw = params.get(name);
  if (raw === null || raw === '' || raw === 'false') return false;
  if (raw === 'true') return true;
  throw invalid(name, 'must be true or false');
}

/** String query parameter of 1..max characters, or undefined when absent. */
export function queryString(params: URLSearchParams, name: string, max: number): string | undefined {
  const raw = params.get(name);
  if (raw === null) return undefined;
  if (raw.length === 0 || raw.length > max)
    throw invalid(name, `a non-empty string of at most ${max} characters is required`);
  return raw;
}

/** RFC 3339 time query parameter as epoch milliseconds, or undefined. */
export function queryTime(params: URLSearchParams, name: string): number | undefined {
  const raw = params.get(name);
  if (raw === null || raw === '') return undefined;
  const value = Date.parse(raw);
  if (!Number.isFinite(value)) throw invalid(name, 'an RFC 3339 time is required');
  return value;
}

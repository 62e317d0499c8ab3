// How the plugin prints: kubectl's table (upper-case headers, columns padded to the widest cell
// and three spaces apart, the last column unpadded), and -o json / -o yaml of the same data.
import { dump } from 'js-yaml';
import type { OutputFormat } from './options.ts';

export interface Printer {
  write(text: string): void;
}

/** kubectl's table: each column as wide as its widest cell, three spaces between columns. */
export function table(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const all = [headers, ...rows];
  const widths = headers.map((_, column) => Math.max(...all.map((row) => (row[column] ?? '').length)));
  return all
    .map((row) =>
      row
        .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
        .join('   ')
        .trimEnd(),
    )
    .join('\n');
}

/** The data as JSON (two-space indent, like kubectl) or YAML. */
export function serialize(data: unknown, format: Extract<OutputFormat, 'json' | 'yaml'>): string {
  if (format === 'json') return `${JSON.stringify(data, null, 2)}\n`;
  return toYaml(data);
}

/**
 * YAML of what JSON would say: client-node hands out objects with Dates and undefined fields, which
 * js-yaml refuses to dump; one JSON round trip gives the API's own form (RFC 3339 strings).
 */
export function toYaml(data: unknown): string {
  return dump(JSON.parse(JSON.stringify(data ?? null)), { noRefs: true, lineWidth: -1, sortKeys: false });
}

/** Indents every line of a block of text. */
export function indent(text: string, by = 2): string {
  const pad = ' '.repeat(by);
  return text
    .split('\n')
    .map((line) => (line.length > 0 ? `${pad}${line}` : line))
    .join('\n');
}

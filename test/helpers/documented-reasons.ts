// What docs/connector-resource.md promises the operator writes: the phases, the condition reasons
// (by type and status), the failure classes and the Event reasons. Parsed from the document itself,
// so a test that compares the code with these fails when either side changes without the other.
import { readFileSync } from 'node:fs';

function resourceDoc(): string {
  return readFileSync(new URL('../../docs/connector-resource.md', import.meta.url), 'utf8');
}

function between(doc: string, start: string, end: string): string {
  const from = doc.indexOf(start);
  const to = doc.indexOf(end, from + start.length);
  if (from < 0 || to < 0)
    throw new Error(`docs/connector-resource.md: no section from "${start}" to "${end}"`);
  return doc.slice(from, to);
}

const tableCells = (line: string) => line.split('|').map((c) => c.trim());

interface ConditionRow {
  type: string;
  /** True, False, Unknown, or the row's own words ("True (else absent)", "False / Unknown"). */
  status: string;
  reasons: string[];
}

/** The rows of the Conditions table, each with the condition type it belongs to. */
function conditionRows(): ConditionRow[] {
  const section = between(resourceDoc(), '## Conditions', '## Events');
  const rows: ConditionRow[] = [];
  let type = '';
  for (const line of section.split('\n')) {
    const cells = tableCells(line);
    if (cells.length < 5 || cells[1] === 'type' || cells[1]?.startsWith('-')) continue;
    const named = /^`(\w+)`$/.exec(cells[1] ?? '');
    if (named?.[1]) type = named[1];
    if (!type) continue;
    // Reasons are the CamelCase words in backticks; field names and paths are not.
    const reasons = [...(cells[3] ?? '').matchAll(/`([A-Z][A-Za-z]+)`/g)].map((m) => m[1] ?? '');
    rows.push({ type, status: cells[2] ?? '', reasons });
  }
  return rows;
}

/** The reasons the docs list for each condition type, from the Conditions table. */
export function documentedReasons(): Map<string, Set<string>> {
  const result = new Map<string, Set<string>>();
  for (const row of conditionRows()) {
    const reasons = result.get(row.type) ?? new Set<string>();
    for (const reason of row.reasons) reasons.add(reason);
    result.set(row.type, reasons);
  }
  return result;
}

/** The reasons the docs list for one condition type with one status (e.g. DurableStorage False). */
export function documentedReasonsWithStatus(type: string, status: 'True' | 'False' | 'Unknown'): Set<string> {
  return new Set(
    conditionRows()
      .filter((row) => row.type === type && row.status.split(/[^A-Za-z]+/).includes(status))
      .flatMap((row) => row.reasons),
  );
}

/** The cell `meaning` of one row of the status table, by its field name. */
function statusField(field: string): string {
  const section = between(resourceDoc(), '\n## status', '## Conditions');
  for (const line of section.split('\n')) {
    const cells = tableCells(line);
    if (cells[1] === `\`${field}\``) return cells[2] ?? '';
  }
  throw new Error(`docs/connector-resource.md: the status table has no row ${field}`);
}

/** The phases of `status.phase`: the CamelCase words in backticks of its row. */
export function documentedPhases(): Set<string> {
  return new Set([...statusField('phase').matchAll(/`([A-Z][A-Za-z]+)`/g)].map((m) => m[1] ?? ''));
}

/** The failure classes of `status.diagnosis.failureClass`: each is written `Name` (what it means). */
export function documentedFailureClasses(): Set<string> {
  return new Set(
    [...statusField('diagnosis.failureClass').matchAll(/`([A-Z][A-Za-z]+)` \(/g)].map((m) => m[1] ?? ''),
  );
}

/**
 * The Event reasons of the Events table. A pattern is expanded with what it names: `Phase<Phase>`
 * with the phases, `Storage<Reason>` with the DurableStorage reasons of status False (the row's
 * "became False"), `Diagnosed<Class>` with the failure classes.
 */
export function documentedEventReasons(): Set<string> {
  const section = between(resourceDoc(), '## Events', '## Examples');
  const expansions: Record<string, () => Set<string>> = {
    Phase: documentedPhases,
    Storage: () => documentedReasonsWithStatus('DurableStorage', 'False'),
    Diagnosed: documentedFailureClasses,
  };
  const result = new Set<string>();
  for (const line of section.split('\n')) {
    const cells = tableCells(line);
    if (cells.length < 5 || cells[1] === 'reason' || cells[1]?.startsWith('-')) continue;
    for (const match of (cells[1] ?? '').matchAll(/`([A-Z][A-Za-z]*)(<[A-Za-z]+>)?`/g)) {
      const [, name = '', pattern] = match;
      if (!pattern) {
        result.add(name);
        continue;
      }
      const expand = expansions[name];
      if (!expand)
        throw new Error(`docs/connector-resource.md: Event pattern ${name}${pattern} is not known`);
      for (const value of expand()) result.add(`${name}${value}`);
    }
  }
  return result;
}

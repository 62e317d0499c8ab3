// The one duration grammar (src/lib/duration.ts): what it reads, how a bad setting is worded, and that
// every value the Connector CRD accepts for spec.enrollment.tokenTTL reads here as the API server
// reads it (the CRD's pattern is a narrower spelling of the same grammar).
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { load } from 'js-yaml';
import { describeDuration, parseDurationField, parseDurationMs } from '../../src/lib/duration.ts';
import { DEFAULT_TOKEN_TTL } from '../../src/operator/api/constants.ts';
import { TOKEN_TTL_PATTERN } from '../../src/operator/api/types.ts';

const CRD = fileURLToPath(new URL('../../crds/connectors.vaultpam.io.yaml', import.meta.url));
const DOCS = fileURLToPath(new URL('../../docs/connector-resource.md', import.meta.url));

test('reads number-unit pairs, largest unit first, and bare seconds', (t) => {
  const cases: Array<[string, number]> = [
    ['10s', 10_000],
    ['250ms', 250],
    ['1.5', 1500],
    ['90', 90_000],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    ['1h30m', 5_400_000],
    ['4m59s', 299_000],
    ['1h2m3s', 3_723_000],
    ['0s', 0],
    [' 5m ', 300_000],
  ];
  for (const [text, milliseconds] of cases) t.is(parseDurationMs(text), milliseconds, text);
});

test('refuses negatives, units out of order, unknown units and empty text', (t) => {
  for (const text of ['', ' ', '-1s', 'ten', '30m1h', '5s1m', '4H', '1w', '1h 30m', 's', '1.5.5s']) {
    t.is(parseDurationMs(text), undefined, JSON.stringify(text));
  }
});

test('a duration setting names its field and what it takes; zero only where it switches off', (t) => {
  t.is(parseDurationField('15m', '--give-up-after', { allowZero: true }), 900_000);
  t.is(parseDurationField('0', '--give-up-after', { allowZero: true }), 0);
  t.deepEqual(parseDurationField('soon', '--resync', { allowZero: false }), {
    problem:
      '--resync: must be a duration like 10s, 250ms, 5m or 1h30m, more than 0; "soon" is not a duration like these',
  });
  t.deepEqual(parseDurationField('0s', '--request-timeout (env X)', { allowZero: false }), {
    problem:
      '--request-timeout (env X): must be a duration like 10s, 250ms, 5m or 1h30m, more than 0; "0s" is zero',
  });
  t.deepEqual(parseDurationField('-1s', '--give-up-after', { allowZero: true }), {
    problem:
      '--give-up-after: must be a duration like 10s, 250ms, 5m or 1h30m (0 disables); "-1s" is not a duration like these',
  });
});

test('durations are worded in hours and minutes, minutes and seconds, or seconds', (t) => {
  t.is(describeDuration(3 * 3_600_000 + 2 * 60_000 + 5000), '3 h 2 min');
  t.is(describeDuration(-(5 * 60_000 + 1000)), '5 min 1 s');
  t.is(describeDuration(400), '0 s');
});

interface CrdRule {
  rule: string;
}

/** The pattern in the CRD's first tokenTTL rule, `self.matches('<pattern>') && ...`. */
async function crdTokenTtlPattern(): Promise<{ pattern: RegExp; example: string; default: string }> {
  const crd = load(await readFile(CRD, 'utf8')) as {
    spec: { versions: Array<{ schema: { openAPIV3Schema: Record<string, unknown> } }> };
  };
  // biome-ignore lint/suspicious/noExplicitAny: walking a parsed YAML document
  const schema = crd.spec.versions[0]?.schema.openAPIV3Schema as any;
  const tokenTTL = schema.properties.spec.properties.enrollment.properties.tokenTTL;
  const rules = tokenTTL['x-kubernetes-validations'] as CrdRule[];
  const source = /self\.matches\('([^']+)'\)/.exec(rules[0]?.rule ?? '')?.[1];
  if (source === undefined) throw new Error('the CRD no longer has a tokenTTL pattern rule');
  return { pattern: new RegExp(source), example: tokenTTL.description, default: tokenTTL.default };
}

/** What CEL's duration() makes of a CRD-accepted value, computed without the parser under test. */
function celSeconds(text: string): number {
  const part = (unit: string) => Number(new RegExp(`(\\d+)${unit}`).exec(text)?.[1] ?? 0);
  return part('h') * 3600 + part('m(?!s)') * 60 + part('s');
}

test("every tokenTTL the CRD's pattern accepts reads as the API server reads it, and the operator's pattern is the CRD's", async (t) => {
  const crd = await crdTokenTtlPattern();
  // The CRD rule says `self.matches(...) && self != ''`: the operator's pattern refuses '' itself.
  for (const value of ['', '4h', '30m', 'x', '1d', '1h30m', '90s', '4h0m0s', '0h5m', '123456h', '1234567h']) {
    t.is(
      TOKEN_TTL_PATTERN.test(value),
      crd.pattern.test(value) && value !== '',
      `pattern agrees on "${value}"`,
    );
  }
  const samples = new Set<string>([DEFAULT_TOKEN_TTL, crd.default]);
  // The examples the CRD's description and the docs give.
  for (const text of [crd.example, await readFile(DOCS, 'utf8')]) {
    for (const match of text.matchAll(/\b\d+h(?:\d+m)?(?:\d+s)?\b|\b\d+m(?:\d+s)?\b|\b\d+s\b/g)) {
      if (crd.pattern.test(match[0])) samples.add(match[0]);
    }
  }
  // And every combination of the three units the pattern allows.
  for (const h of ['', '0h', '4h', '999999h'])
    for (const m of ['', '0m', '5m', '90m'])
      for (const s of ['', '0s', '1s', '3600s']) samples.add(`${h}${m}${s}`);
  samples.delete('');
  t.true(
    samples.has('1h30m') && samples.has('4h') && samples.has('30m'),
    'the documented examples are sampled',
  );
  for (const value of samples) {
    t.true(crd.pattern.test(value), `the CRD accepts "${value}"`);
    t.is(parseDurationMs(value), celSeconds(value) * 1000, `"${value}" reads as CEL's duration()`);
  }
});

test('a period waited out with a timer is refused past the longest a timer holds, naming it', (t) => {
  // Node runs a timer longer than 2^31 - 1 ms after 1 ms: "--resync 30d" would pass every Connector
  // a thousand times a second.
  t.is(parseDurationField('596h31m23s', '--resync', { allowZero: false, timer: true }), 2_147_483_000);
  t.deepEqual(parseDurationField('30d', '--resync', { allowZero: false, timer: true }), {
    problem: '--resync: must be at most 596h31m23s (the longest wait a timer holds); "30d" is longer',
  });
  t.is(parseDurationField('30d', '--release-timeout', { allowZero: false }), 30 * 86_400_000, 'not a timer');
});

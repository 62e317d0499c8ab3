// api/openapi.yaml, docs/control-plane-contract.md and the implementation must agree.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { load } from 'js-yaml';
import { AUDIT_TYPES } from '../../src/controlplane/audit.ts';
import { ERROR_STATUS } from '../../src/controlplane/errors.ts';
import { ROUTES } from '../../src/controlplane/http/routes.ts';
import { CONNECTOR_STATES } from '../../src/controlplane/state.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

interface Operation {
  security?: Array<Record<string, unknown>>;
  responses: Record<string, unknown>;
  'x-error-codes'?: string[];
}
type Doc = {
  openapi: string;
  paths: Record<string, Partial<Record<(typeof METHODS)[number], Operation>>>;
  components: { schemas: Record<string, { enum?: string[]; 'x-http-status'?: Record<string, number> }> };
};

const doc = load(readFileSync(join(ROOT, 'api/openapi.yaml'), 'utf8')) as Doc;
const contract = readFileSync(join(ROOT, 'docs/control-plane-contract.md'), 'utf8');

function operations(): Array<[string, Operation]> {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    METHODS.filter((m) => item[m]).map(
      (m) => [`${m.toUpperCase()} ${path}`, item[m] as Operation] as [string, Operation],
    ),
  );
}

test('the document is OpenAPI 3.1', (t) => {
  t.regex(doc.openapi, /^3\.1\./);
});

test('every route the server registers is documented, and every documented route is served', (t) => {
  const served = ROUTES.map((r) => `${r.method} ${r.path}`).sort();
  const documented = operations()
    .map(([key]) => key)
    .sort();
  t.deepEqual(documented, served);
});

test('authentication in the document matches the route table', (t) => {
  const byKey = new Map(operations());
  for (const route of ROUTES) {
    const op = byKey.get(`${route.method} ${route.path}`) as Operation;
    const schemes = (op.security ?? []).flatMap((s) => Object.keys(s));
    const expected = { admin: ['adminBearer'], mtls: ['connectorCertificate'], public: [], token: [] }[
      route.auth
    ];
    t.deepEqual(schemes, expected, `${route.method} ${route.path}`);
    const codes = op['x-error-codes'] ?? [];
    if (route.auth === 'admin') t.true(codes.includes('UNAUTHORIZED'), `${route.method} ${route.path}`);
    if (route.auth === 'mtls')
      t.true(codes.includes('CLIENT_CERTIFICATE_REJECTED'), `${route.method} ${route.path}`);
  }
});

test('the documented error codes are exactly the implementation’s, with the same statuses', (t) => {
  const schema = doc.components.schemas.ErrorCode;
  t.deepEqual([...(schema?.enum ?? [])].sort(), Object.keys(ERROR_STATUS).sort());
  t.deepEqual(schema?.['x-http-status'], { ...ERROR_STATUS });
});

test('every error code is one the code can produce (raised somewhere outside the registry)', (t) => {
  const files = [
    ...readdirSync(join(ROOT, 'src/controlplane'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts') && f !== 'errors.ts')
      .map((f) => join(ROOT, 'src/controlplane', f)),
    join(ROOT, 'src/lib/pki.ts'),
  ];
  const source = files.map((f) => readFileSync(f, 'utf8')).join('\n');
  for (const code of Object.keys(ERROR_STATUS)) {
    t.true(source.includes(`'${code}'`), `${code} is never raised`);
  }
});

test('each operation lists error codes whose statuses it documents, and documents no status without a code', (t) => {
  for (const [key, op] of operations()) {
    const codes = op['x-error-codes'] ?? [];
    const statuses = Object.keys(op.responses).filter((s) => Number(s) >= 400);
    for (const code of codes) {
      const status = ERROR_STATUS[code as keyof typeof ERROR_STATUS];
      t.truthy(status, `${key}: unknown code ${code}`);
      t.true(statuses.includes(String(status)), `${key}: ${code} answers ${status}, which is not documented`);
    }
    for (const status of statuses) {
      t.true(
        codes.some((code) => String(ERROR_STATUS[code as keyof typeof ERROR_STATUS]) === status),
        `${key}: ${status} has no code`,
      );
    }
  }
});

test('the contract page names the same routes, codes, states and audit types', (t) => {
  const documented = new Set(operations().map(([key]) => key));
  const routeMentions = [...contract.matchAll(/`(GET|PUT|POST|DELETE) (\/[^`?\s]*)/g)].map(
    (m) => `${m[1]} ${m[2]}`,
  );
  t.true(routeMentions.length >= 13);
  for (const mention of routeMentions) t.true(documented.has(mention), `contract route ${mention}`);
  for (const [, status, code] of contract.matchAll(/\b([1-5]\d\d) ([A-Z][A-Z_]{3,})\b/g)) {
    t.is(
      String(ERROR_STATUS[code as keyof typeof ERROR_STATUS]),
      status ?? '',
      `contract: ${status} ${code}`,
    );
  }
  for (const state of CONNECTOR_STATES) t.true(contract.includes(`\`${state}\``), state);
  const auditEnum = (doc.components.schemas.AuditEntry as { properties?: { type?: { enum?: string[] } } })
    .properties?.type?.enum;
  t.deepEqual(auditEnum, [...AUDIT_TYPES]);
  for (const type of AUDIT_TYPES) t.true(contract.includes(`\`${type}\``), type);
  const stateEnum = doc.components.schemas.ConnectorState?.enum;
  t.deepEqual(stateEnum, [...CONNECTOR_STATES]);
});

test("docs/control-plane.md's table of what an unauthenticated caller can cause covers every route and cites real tests", (t) => {
  const page = readFileSync(join(ROOT, 'docs/control-plane.md'), 'utf8');
  const start = page.indexOf('## What an unauthenticated caller can cause');
  const table = page.slice(start, page.indexOf('### Write budgets', start));
  t.true(start > 0);
  for (const route of ROUTES)
    t.true(table.includes(`\`${route.method} ${route.path}\``), `${route.method} ${route.path}`);
  const citations = [...table.matchAll(/`([a-z-]+\.test\.ts)` › "([^"]+)"((?: and › "[^"]+")*)/g)];
  t.true(citations.length >= 10);
  for (const [, file, title, more] of citations) {
    const source = readFileSync(join(ROOT, 'test/controlplane', file as string), 'utf8');
    for (const cited of [title, ...[...(more ?? '').matchAll(/› "([^"]+)"/g)].map((m) => m[1])]) {
      t.true(
        [`'${cited}'`, `"${cited}"`, `\`${cited}\``].some((q) => source.includes(q)),
        `${file}: ${cited}`,
      );
    }
  }
});

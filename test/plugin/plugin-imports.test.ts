// src/plugin may import src/operator (docs/architecture.md, the layering table says why), but only
// its pure modules: the Connector's and ControlPlane's types and names, the syntax of Kubernetes
// names, the condition reasons, the admin client, the rule on where a credential may be sent, the
// mint-key scheme, which token is live (from the status alone), the cleaning of text from elsewhere. None that starts informers, leader election, a work queue or writes: the plugin acts
// with the person's rights, never the operator's.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import test from 'ava';

const root = new URL('../../', import.meta.url).pathname;

const ALLOWED = new Set([
  'src/operator/api/constants.ts',
  'src/operator/api/control-planes.ts',
  'src/operator/api/types.ts',
  'src/operator/api/validation.ts',
  'src/operator/conditions.ts',
  'src/operator/control-plane/admin-client.ts',
  'src/operator/control-plane/check.ts',
  'src/operator/control-plane/credential-url.ts',
  'src/operator/reconcile/desired-objects.ts',
  'src/operator/reconcile/enrollment.ts',
  'src/operator/reconcile/live-token.ts',
  'src/operator/reconcile/pod-facts.ts',
  'src/operator/reconcile/recovery-stages.ts',
  'src/operator/reconcile/storage-posture.ts',
  'src/operator/reconcile/untrusted-text.ts',
  'src/operator/runtime/api-errors.ts',
  'src/operator/runtime/credential.ts',
  'src/operator/runtime/secret-patterns.ts',
]);

function files(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? files(join(dir, entry.name))
      : entry.name.endsWith('.ts')
        ? [join(dir, entry.name)]
        : [],
  );
}

test('the plugin imports only the pure modules of src/operator', (t) => {
  const imported = new Map<string, string>();
  for (const file of files('src/plugin')) {
    const text = readFileSync(join(root, file), 'utf8');
    for (const [, specifier] of text.matchAll(/from '(\.[^']+)'/g)) {
      const target = relative(root, resolve(join(root, file, '..'), specifier ?? ''));
      if (target.startsWith('src/operator/')) imported.set(target, file);
    }
  }
  const unexpected = [...imported].filter(([target]) => !ALLOWED.has(target));
  t.deepEqual(unexpected, [], 'operator modules the plugin imports beyond the pure ones (module, importer)');
  t.true(imported.size > 5, 'the scan found the imports');
});

// tools/kubectl/build.sh builds kubectl inside the cluster wrapper module with its go.mod as it is,
// so kubectl's dependencies are the cluster's own versions; tools/kubectl/extra.sum may only add the
// checksums of modules the cluster's go.sum lacks, never a second version of one it has (that would
// mean the pins had moved apart and the two builds no longer share the compiled packages).
import { readFileSync } from 'node:fs';
import test from 'ava';

const root = new URL('../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

/** module -> versions, from go.sum lines ("module version[/go.mod] h1:..."). */
function sums(text: string): Map<string, Set<string>> {
  const found = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const [module, version] = line.split(' ');
    if (!module || !version) continue;
    const versions = found.get(module) ?? new Set<string>();
    versions.add(version.replace(/\/go\.mod$/, ''));
    found.set(module, versions);
  }
  return found;
}

test('extra.sum adds only modules the cluster go.sum lacks', (t) => {
  const cluster = sums(read('tools/cluster/go.sum'));
  const extra = sums(read('tools/kubectl/extra.sum'));
  t.true(extra.has('k8s.io/cli-runtime'), 'kubectl needs cli-runtime, which the cluster binaries do not');
  for (const [module, versions] of extra) {
    const clusterVersions = cluster.get(module);
    if (!clusterVersions) continue;
    for (const version of versions)
      t.true(
        clusterVersions.has(version),
        `${module} ${version}: the cluster pins ${[...clusterVersions].join(', ')}`,
      );
  }
  // cli-runtime is replaced to the staging release of the pinned Kubernetes (v1.37.2 -> v0.37.2).
  const kube = /^\s*k8s\.io\/kubernetes (v1\.(\d+)\.(\d+))$/m.exec(read('tools/cluster/go.mod'));
  t.truthy(kube);
  t.deepEqual([...(extra.get('k8s.io/cli-runtime') ?? [])], [`v0.${kube?.[2]}.${kube?.[3]}`]);
});

test('build.sh builds from the cluster go.mod as it is, in the cluster module, with its own cache', (t) => {
  const script = read('tools/kubectl/build.sh');
  t.regex(script, /cp "\$cluster\/go\.mod" "\$modfiles\/kubectl\.mod"/, 'go.mod is copied, not edited');
  t.regex(script, /cd "\$cluster"/, 'go build runs in tools/cluster');
  t.regex(script, /-modfile="\$modfiles\/kubectl\.mod"/);
  t.regex(script, /go_tool_cache_root kubectl "\$\{VAULTPAM_KUBECTL_CACHE:-\}"/);
  t.notRegex(script, />+ *"?\$cluster\/go\.(mod|sum)/, 'nothing writes the cluster module files');
});

// The first `npm start` turns the build scripts' stderr (their "[x-build]" step lines and go's -x
// trace) into a few readable lines: each step with its place in the plan and what remains, modules
// and packages counted, elapsed time; the trace never reaches the person, a Go error always does.
import test from 'ava';
import { BuildProgress, clockTime, listWords } from '../../dev/local-cluster/build-progress.ts';

const PLAN = ['kustomize', 'kube-apiserver', 'kube-controller-manager', 'etcd', 'kubectl'];

function harness() {
  let now = 0;
  const said: string[] = [];
  const progress = new BuildProgress({ say: (line) => said.push(line), plan: PLAN, now: () => now });
  return {
    progress,
    said,
    at(seconds: number) {
      now = seconds * 1000;
    },
    feed(text: string) {
      for (const line of text.split('\n')) progress.line(line);
    },
  };
}

/** What `go build -x` prints for one package, as go 1.26 prints it. */
const compileTrace = (pkg: string, n: number) => `mkdir -p $WORK/b${n}/
cat >/tmp/go-build1/b${n}/importcfg << 'EOF' # internal
# import config
packagefile fmt=/root/.cache/go-build/aa/aa-d
packagefile ${pkg}/internal=/root/.cache/go-build/bb/bb-d
EOF
cd /root/go/pkg/mod/${pkg}@v1.0.0
/usr/local/go/pkg/tool/linux_amd64/compile -o $WORK/b${n}/_pkg_.a -trimpath "$WORK/b${n}=>" -p ${pkg} -lang=go1.26 -complete -buildid abc/abc -goversion go1.26.8 -c=2 -nolocalimports -importcfg $WORK/b${n}/importcfg -pack ./a.go ./b.go
/usr/local/go/pkg/tool/linux_amd64/buildid -w $WORK/b${n}/_pkg_.a # internal
go tool buildid -w $WORK/b${n}/_pkg_.a # internal
cp $WORK/b${n}/_pkg_.a /root/.cache/go-build/cc/cc-d # internal
mv $WORK/b${n}/_pkg_.a /root/.cache/go-build/cc/cc-d`;

test('a cold cluster build reads as steps with their place in the plan, counts and what remains', (t) => {
  const h = harness();
  h.feed('[cluster-build] downloading Go modules (k8s.io/kubernetes v1.37.2, etcd v3.7.0, kustomize v5.8.2)');
  h.feed(`# get https://proxy.golang.org/k8s.io/api/@v/v0.37.2.zip
# get https://proxy.golang.org/k8s.io/api/@v/v0.37.2.zip: 200 OK (0.412s)
# get https://proxy.golang.org/k8s.io/api/@v/v0.37.2.mod: 200 OK (0.020s)
# get https://proxy.golang.org/go.etcd.io/etcd/server/v3/@v/v3.7.0.zip: 200 OK (0.3s)`);
  h.at(30);
  h.progress.heartbeat();
  h.at(61);
  h.feed('[cluster-build] building kustomize v5.8.2');
  h.feed(compileTrace('sigs.k8s.io/kustomize/api', 1));
  h.feed(compileTrace('sigs.k8s.io/kyaml', 2));
  h.at(95);
  h.progress.heartbeat();
  h.at(120);
  h.feed('[cluster-build] building kube-apiserver v1.37.2 (first build takes several minutes on 2 cores)');
  h.feed(compileTrace('k8s.io/apiserver/pkg/server', 3));
  h.at(400);
  h.feed('[cluster-build] done in 400 s: /cache/cluster/kube-v1.37.2');
  h.feed('[kubectl-build] building kubectl v1.37.2');
  h.at(430);
  h.feed('[kubectl-build] done in 30 s: /cache/kubectl');
  h.progress.finished();
  t.deepEqual(h.said, [
    '[0:00] downloading Go modules (k8s.io/kubernetes v1.37.2, etcd v3.7.0, kustomize v5.8.2)',
    '[0:30] downloading Go modules: 2 modules downloaded so far (0:30 on this step)',
    '[1:01] building kustomize v5.8.2 [1 of 5; then kube-apiserver, kube-controller-manager, etcd and kubectl]',
    '[1:35] building kustomize: 2 packages compiled so far (0:34 on this step)',
    '[2:00] building kube-apiserver v1.37.2 (first build takes several minutes on 2 cores) [2 of 5; then kube-controller-manager, etcd and kubectl]',
    '[6:40] building kubectl v1.37.2 [5 of 5]',
    '[7:10] built kustomize, kube-apiserver and kubectl in 7:10 (3 packages compiled, 2 modules downloaded); later runs reuse them',
  ]);
});

test("go's trace never reaches the person; a Go error and a script's own message do, and stay in the tail", (t) => {
  const h = harness();
  h.feed('[cluster-build] building etcd v3.7.0');
  h.feed(compileTrace('go.etcd.io/etcd/server/v3', 7));
  h.feed('WORK=/tmp/go-build123');
  h.feed('# k8s.io/example/broken');
  h.feed('../broken/a.go:12:3: undefined: Thing');
  h.feed('[kubectl-build] another build of /cache/kubectl is running; waiting for it');
  t.deepEqual(h.said, [
    '[0:00] building etcd v3.7.0 [4 of 5; then kubectl]',
    '[0:00] # k8s.io/example/broken',
    '[0:00] ../broken/a.go:12:3: undefined: Thing',
    '[0:00] another build of /cache/kubectl is running; waiting for it',
  ]);
  t.false(
    h.said.some((line) => /\$WORK|packagefile|\/compile |buildid/.test(line)),
    h.said.join('\n'),
  );
  t.regex(h.progress.tail(), /undefined: Thing/);
  t.notRegex(h.progress.tail(), /packagefile|\$WORK/);
});

/** What `go build -x` prints for a cgo package (runtime/cgo, net) when the build cache is cold. */
const cgoTrace = (n: number) => `cd /usr/local/go/src/runtime/cgo
TERM='dumb' CGO_LDFLAGS='' /usr/local/go/pkg/tool/linux_amd64/cgo -objdir $WORK/b${n}/ -importpath runtime/cgo -import_runtime_cgo=false -- -I $WORK/b${n}/ -O2 -g ./cgo.go
cd $WORK/b${n}
TERM='dumb' gcc -I /usr/local/go/src/runtime/cgo -fPIC -m64 -pthread -I $WORK/b${n}/ -O2 -g -o $WORK/b${n}/_x001.o -c _cgo_export.c
TERM='dumb' gcc -I . -fPIC -m64 -pthread -o $WORK/b${n}/_x003.o -c gcc_amd64.S
gcc -I /usr/local/go/src/runtime/cgo -fPIC -m64 -pthread -o $WORK/b${n}/_cgo_.o $WORK/b${n}/_cgo_main.o
TERM='dumb' /usr/local/go/pkg/tool/linux_amd64/cgo -dynpackage cgo -dynimport $WORK/b${n}/_cgo_.o -dynout $WORK/b${n}/_cgo_import.go`;

test("a cold Go cache's cgo compiler runs are trace too", (t) => {
  const h = harness();
  h.feed('[cluster-build] building etcd v3.7.0');
  h.feed(cgoTrace(116));
  h.feed(compileTrace('runtime/cgo', 116));
  t.deepEqual(h.said, ['[0:00] building etcd v3.7.0 [4 of 5; then kubectl]']);
  t.notRegex(h.progress.tail(), /gcc|TERM=/);
});

test('with a warm cache nothing is said, not even the closing line', (t) => {
  const h = harness();
  h.progress.heartbeat();
  h.progress.finished();
  t.deepEqual(h.said, []);
});

test('a binary outside the plan is still named, without a place', (t) => {
  const h = harness();
  h.feed('[demo-build] building hello');
  t.deepEqual(h.said, ['[0:00] building hello']);
});

test('clock times and word lists', (t) => {
  t.is(clockTime(0), '0:00');
  t.is(clockTime(75_400), '1:15');
  t.is(clockTime(3_723_000), '1:02:03');
  t.is(listWords([]), '');
  t.is(listWords(['a']), 'a');
  t.is(listWords(['a', 'b']), 'a and b');
  t.is(listWords(['a', 'b', 'c']), 'a, b and c');
});

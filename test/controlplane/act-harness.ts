// What a test of act() against the real control plane needs: the operator's connection to it (the
// real admin client and follower) and an act context that writes nothing to Kubernetes and scales
// nothing (each test calls only the control plane).
import type { ExecutionContext } from 'ava';
import { silentLogger } from '../../src/lib/logger.ts';
import type { ControlPlaneConnection } from '../../src/operator/control-plane/connections.ts';
import { ControlPlaneFollower } from '../../src/operator/control-plane/follower.ts';
import type { ActContext } from '../../src/operator/reconcile/act.ts';
import { createOperatorMetrics } from '../../src/operator/runtime/metrics.ts';
import type { Harness } from './helpers.ts';

export function operatorConnection(h: Harness): ControlPlaneConnection {
  const follower = new ControlPlaneFollower({
    client: () => h.admin,
    logger: silentLogger(),
    onChange: () => {},
  });
  return { key: 'default', url: h.cp.url, caPem: h.cp.caPem, client: () => h.admin, follower };
}

/** An act context whose Kubernetes writes and scaling fail the test; `mayAct` as the test wants it. */
export function controlPlaneOnlyContext(t: ExecutionContext, mayAct: ActContext['mayAct']): ActContext {
  return {
    writer: new Proxy({} as ActContext['writer'], {
      get: () => () => t.fail('nothing is written to Kubernetes in this pass'),
    }),
    recorder: {} as ActContext['recorder'],
    metrics: createOperatorMetrics(),
    logger: silentLogger(),
    scale: async () => t.fail('nothing is scaled'),
    mayAct,
  };
}

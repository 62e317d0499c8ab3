// The operator's default control plane's CA bundle (--control-plane-ca-file), read and judged once,
// at start. The default has no resource whose status could say it is unusable, and every Connector
// without spec.controlPlaneRef would carry it in its ConfigMap: a bundle that holds no parseable
// certificate, or that no Connector's ConfigMap can carry (reconcile/config-map-budget.ts), is
// refused here, naming the flag, so the operator's admin fixes the flag rather than every such
// Connector stalling for what its author cannot change.
import { readFile } from 'node:fs/promises';
import { flagError } from '../../lib/cli.ts';
import { errorMessage } from '../../lib/errors.ts';
import { caBundleSizeProblem } from '../reconcile/config-map-budget.ts';
import { caBundleProblem } from './check.ts';

const CA_FLAG = '--control-plane-ca-file';

/**
 * The bundle ('' for the system trust store) from `caPem`, else from the file `caFile`; throws
 * INVALID_FLAGS naming the flag (or, for a bundle given in-process, the default control plane's CA).
 */
export async function defaultCaPem(source: { caPem?: string; caFile?: string }): Promise<string> {
  const fromFile = source.caPem === undefined && Boolean(source.caFile);
  let caPem = source.caPem ?? '';
  if (fromFile && source.caFile) {
    try {
      caPem = await readFile(source.caFile, 'utf8');
    } catch (error) {
      throw flagError(`${CA_FLAG}: cannot read ${source.caFile}: ${errorMessage(error)}`);
    }
  }
  // No bundle means the system trust store, unless a file was named: an empty one (a ConfigMap key
  // mounted empty) is a mistake to say, as a ControlPlane's empty CA key is, not a quiet switch to
  // trusting every public CA.
  if (!caPem && !fromFile) return '';
  const problem = caBundleSizeProblem(caPem) ?? caBundleProblem(caPem);
  if (problem === undefined) return caPem;
  const where = fromFile ? `${CA_FLAG}: ${source.caFile}` : "the default control plane's CA bundle";
  throw flagError(`${where} ${problem}`);
}

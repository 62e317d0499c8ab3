// A tiny local volume provisioner, as an external provisioner would be: for a Pending claim of a
// pod this runner runs, it creates a hostPath PersistentVolume pre-bound to the claim (name
// pvc-<claim UID>, path <root>/claims/<claim UID>) and leaves the binding itself to the real
// PersistentVolume controller. When the claim is deleted the volume is Released; the provisioner
// then deletes the directory and the volume, as reclaimPolicy Delete promises.
import { rm } from 'node:fs/promises';
import type { CoreV1Api, V1PersistentVolume, V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { errorMessage } from '../../src/lib/errors.ts';
import type { Logger } from '../../src/lib/logger.ts';
import { claimDirectory, isUnder } from './volumes.ts';

export const PROVISIONER_NAME = 'vaultpam.io/local-pod-runner';
export const PROVISIONED_BY_LABEL = 'vaultpam.io/provisioned-by';
const PROVISIONED_BY_VALUE = 'local-pod-runner';

function statusCode(error: unknown): number | undefined {
  return (error as { code?: number }).code;
}

export class LocalProvisioner {
  private readonly core: CoreV1Api;
  private readonly root: string;
  private readonly logger: Logger;

  constructor(options: { core: CoreV1Api; root: string; logger: Logger }) {
    this.core = options.core;
    this.root = options.root;
    this.logger = options.logger;
  }

  /** The volume this provisioner makes for a claim (pure, for inspection and tests). */
  volumeFor(claim: V1PersistentVolumeClaim): V1PersistentVolume {
    const uid = claim.metadata?.uid ?? '';
    const storage = claim.spec?.resources?.requests?.storage ?? '1Gi';
    return {
      metadata: {
        name: `pvc-${uid}`,
        labels: { [PROVISIONED_BY_LABEL]: PROVISIONED_BY_VALUE },
        annotations: { 'pv.kubernetes.io/provisioned-by': PROVISIONER_NAME },
      },
      spec: {
        capacity: { storage },
        accessModes: claim.spec?.accessModes?.length ? claim.spec.accessModes : ['ReadWriteOnce'],
        persistentVolumeReclaimPolicy: 'Delete',
        storageClassName: claim.spec?.storageClassName ?? '',
        volumeMode: claim.spec?.volumeMode ?? 'Filesystem',
        hostPath: { path: claimDirectory(this.root, uid), type: 'DirectoryOrCreate' },
        claimRef: {
          apiVersion: 'v1',
          kind: 'PersistentVolumeClaim',
          namespace: claim.metadata?.namespace ?? 'default',
          name: claim.metadata?.name ?? '',
          uid,
        },
      },
    };
  }

  /** Creates the pre-bound volume for a Pending claim; a volume that already exists is fine. */
  async provision(claim: V1PersistentVolumeClaim): Promise<void> {
    const body = this.volumeFor(claim);
    try {
      await this.core.createPersistentVolume({ body });
      this.logger.info(
        { claim: `${claim.metadata?.namespace}/${claim.metadata?.name}`, volume: body.metadata?.name },
        'provisioned a local volume for the claim',
      );
    } catch (error) {
      if (statusCode(error) !== 409) throw error;
    }
  }

  /**
   * Deletes the directory and the object of every Released volume this provisioner made (those under
   * its root), and returns how many of its volumes are still there: bound, not yet Released, or
   * being deleted. Whoever must know a namespace's volumes are gone (the scale benchmark, before
   * its next phase) calls it until it returns 0.
   */
  async reclaimReleased(): Promise<number> {
    const list = await this.core.listPersistentVolume({
      labelSelector: `${PROVISIONED_BY_LABEL}=${PROVISIONED_BY_VALUE}`,
    });
    let left = 0;
    for (const volume of list.items) {
      const path = volume.spec?.hostPath?.path;
      if (!path || !isUnder(this.root, path)) continue;
      left += 1;
      if (volume.status?.phase !== 'Released' || volume.spec?.persistentVolumeReclaimPolicy !== 'Delete')
        continue;
      try {
        await rm(path, { recursive: true, force: true });
        await this.core.deletePersistentVolume({ name: volume.metadata?.name ?? '' });
        this.logger.info({ volume: volume.metadata?.name, path }, 'reclaimed a released local volume');
      } catch (error) {
        if (statusCode(error) === 404) continue;
        this.logger.warn(
          { volume: volume.metadata?.name, err: errorMessage(error) },
          'could not reclaim a volume',
        );
      }
    }
    return left;
  }
}

// File modes of the identity bundle (the guide's "Permission Denied" check): key 0600, directory
// 0700, nothing writable by group or others. Loose modes are repaired and reported, one warning per
// repair; a mode that cannot be set (not the connector user's file) is a refusal, exit 12 (ownership
// is the fix, not a recovery).
import type { Stats } from 'node:fs';
import { chmod, stat } from 'node:fs/promises';
import { fsErrorCode } from '../lib/errors.ts';
import { identityFilesInaccessibleFailure } from './failure.ts';
import {
  DIRECTORY_MODE,
  type IdentityPaths,
  identityPaths,
  KEY_FILE_MODE,
  PUBLIC_FILE_MODE,
} from './identity-files.ts';

interface PermissionRule {
  path: string;
  /** Mode bits that must not be set. */
  forbidden: number;
  repairedMode: number;
  /** Why the loose mode matters, for the warning. */
  risk: string;
}

function permissionRules(paths: IdentityPaths): PermissionRule[] {
  const replaceable = (path: string): PermissionRule => ({
    path,
    forbidden: 0o022,
    repairedMode: PUBLIC_FILE_MODE,
    risk: 'the file was writable by other users, who could replace it',
  });
  return [
    {
      path: paths.dir,
      forbidden: 0o022,
      repairedMode: DIRECTORY_MODE,
      risk: 'the identity directory was writable by other users, who could replace its files',
    },
    {
      path: paths.key,
      forbidden: 0o077,
      repairedMode: KEY_FILE_MODE,
      risk:
        'the private key was readable by other users; if anyone else could read it, treat the key as ' +
        'exposed: delete the identity directory and restart (guided recovery then revokes it and pairs a ' +
        'new key; it is refused while this identity works)',
    },
    replaceable(paths.cert),
    replaceable(paths.ca),
    replaceable(paths.metadata),
    replaceable(paths.rejection),
    replaceable(paths.refusedTokens),
  ];
}

function octal(mode: number): string {
  return `0${(mode & 0o777).toString(8).padStart(3, '0')}`;
}

/** Sets one loose file mode right; a mode that cannot be set (not our file) is a refusal, exit 12. */
async function repairPermission(rule: PermissionRule): Promise<string | undefined> {
  let current: Stats;
  try {
    current = await stat(rule.path);
  } catch {
    // Missing, or not even visible: reading the file names the problem (no such file, permission denied).
    return undefined;
  }
  if ((current.mode & rule.forbidden) === 0) return undefined;
  try {
    await chmod(rule.path, rule.repairedMode);
  } catch (error) {
    const code = fsErrorCode(error);
    throw identityFilesInaccessibleFailure(
      'IDENTITY_PERMISSIONS',
      `permission of ${rule.path} is ${octal(current.mode)} and cannot be set to ${octal(rule.repairedMode)} ` +
        `(${code}; owned by uid ${current.uid}, the agent runs as uid ${process.geteuid?.() ?? 'unknown'}): ` +
        `${rule.risk.replace(' was ', ' is ')}; make the connector user its owner (chown) and chmod it ` +
        `${octal(rule.repairedMode)}`,
      error,
    );
  }
  return `permission of ${rule.path} was ${octal(current.mode)}, set to ${octal(rule.repairedMode)}: ${rule.risk}`;
}

/**
 * Repairs loose modes of the identity directory and its files (key 0600, directory 0700, nothing
 * writable by group or others) and returns one warning per repair, naming the path and both modes.
 */
export async function repairIdentityPermissions(dataDir: string): Promise<string[]> {
  const warnings: string[] = [];
  for (const rule of permissionRules(identityPaths(dataDir))) {
    const warning = await repairPermission(rule);
    if (warning) warnings.push(warning);
  }
  return warnings;
}

// A real ValidatingAdmissionPolicy for tests: what a cluster's own policy refuses, as the API server
// refuses it (HTTP 422 by default, the policy and its message quoted, no field named).
import {
  AdmissionregistrationV1Api,
  type KubeConfig,
  type V1LabelSelector,
  type V1NamedRuleWithOperations,
} from '@kubernetes/client-node';
import type { ExecutionContext } from 'ava';

/**
 * Policy `name`, bound to `namespace` only, that refuses the writes `rules` match (and
 * `objectSelector`, if given) for which `expression` is false; removed when the test ends.
 */
export async function bindAdmissionPolicy(
  t: ExecutionContext,
  kc: KubeConfig,
  options: {
    name: string;
    namespace: string;
    rules: V1NamedRuleWithOperations[];
    objectSelector?: V1LabelSelector;
    expression: string;
    message: string;
    /** The status of the refusal: Invalid (422, the default) or Forbidden (403, as webhooks answer). */
    reason?: 'Invalid' | 'Forbidden';
  },
): Promise<void> {
  const admission = kc.makeApiClient(AdmissionregistrationV1Api);
  const { name, namespace, rules, objectSelector, expression, message, reason = 'Invalid' } = options;
  await admission.createValidatingAdmissionPolicy({
    body: {
      metadata: { name },
      spec: {
        failurePolicy: 'Fail',
        matchConstraints: { resourceRules: rules, ...(objectSelector ? { objectSelector } : {}) },
        validations: [{ expression, message, reason }],
      },
    },
  });
  await admission.createValidatingAdmissionPolicyBinding({
    body: {
      metadata: { name },
      spec: {
        policyName: name,
        validationActions: ['Deny'],
        matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } } },
      },
    },
  });
  t.teardown(async () => {
    await admission.deleteValidatingAdmissionPolicyBinding({ name }).catch(() => {});
    await admission.deleteValidatingAdmissionPolicy({ name }).catch(() => {});
  });
}

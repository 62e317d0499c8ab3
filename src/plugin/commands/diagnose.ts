// `diagnose NAME`: the runbook walked for one Connector, each check with its result and next step;
// exit 0 when it is healthy (Online, no check failed), 1 otherwise, so a script can ask.
import { gatherFacts } from '../connector-facts.ts';
import { type CommandContext, EXIT, readConnector } from '../context.ts';
import { indent, serialize } from '../output.ts';
import { type DiagnoseReport, runbookChecks } from '../runbook-checks.ts';

const MARK = { ok: '[ok]     ', failed: '[FAILED] ', warning: '[warn]   ' } as const;

export function diagnoseText(report: DiagnoseReport): string {
  const out = [
    `Connector ${report.namespace}/${report.name} (connector id ${report.connectorId}), phase ${report.phase}`,
    '',
  ];
  report.checks.forEach((check, index) => {
    out.push(`${MARK[check.result]}${index + 1}. ${check.title}`);
    out.push(indent(check.detail, 12));
    if (check.nextStep && check.result !== 'ok') out.push(indent(`next: ${check.nextStep}`, 12));
  });
  out.push('');
  if (report.healthy) {
    // Healthy allows warnings (a read not allowed, a question that cannot be told from here): the
    // line says so rather than claiming every check passed.
    const warned = report.checks.filter((check) => check.result === 'warning').length;
    out.push(
      warned > 0
        ? `Healthy: Online, no check failed, ${warned} check(s) warned.`
        : 'Healthy: Online, and every check passed.',
    );
  } else {
    // An Online connector can be unhealthy (Stalled after a failed recovery): the count says why.
    const failed = report.checks.filter((check) => check.result === 'failed').length;
    const counted = failed > 0 ? `, ${failed} check(s) failed` : '';
    out.push(
      `Not healthy: phase ${report.phase}${counted}.${report.nextStep ? ` Next step: ${report.nextStep}` : ''}`,
    );
  }
  return `${out.join('\n')}\n`;
}

export async function diagnoseCommand(ctx: CommandContext): Promise<number> {
  const { options, io } = ctx;
  const connector = await readConnector(ctx, options.name ?? '');
  const facts = await gatherFacts({
    api: ctx.api,
    connector,
    operatorNamespace: options.operatorNamespace,
    defaults: options.defaultControlPlane,
  });
  const report = runbookChecks(facts);
  if (options.output === 'json' || options.output === 'yaml') {
    io.stdout.write(serialize(report, options.output));
  } else {
    io.stdout.write(diagnoseText(report));
  }
  return report.healthy ? EXIT.ok : EXIT.no;
}

// `status [NAME] [-A] [-o table|wide|json|yaml]`: the Connectors in a table, or one Connector's
// full report.
import { gatherFacts } from '../connector-facts.ts';
import { apiFailure, type CommandContext, EXIT, readConnector } from '../context.ts';
import { serialize } from '../output.ts';
import { statusReport, statusReportText, summarize, summaryTable } from '../status-report.ts';

export async function statusCommand(ctx: CommandContext): Promise<number> {
  const { options, io } = ctx;
  const now = io.now();
  if (options.name === undefined) {
    const namespace = options.allNamespaces ? undefined : ctx.namespace;
    const connectors = await ctx.api.listConnectors(namespace).catch((error: unknown) => {
      throw apiFailure(`list Connectors${namespace ? ` in namespace ${namespace}` : ''}`, error);
    });
    const summaries = connectors
      .map((c) => summarize(c, now))
      .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
    if (options.output === 'json' || options.output === 'yaml') {
      io.stdout.write(serialize({ items: summaries }, options.output));
      return EXIT.ok;
    }
    if (summaries.length === 0) {
      io.stderr.write(`No Connectors found${namespace ? ` in ${namespace} namespace` : ''}.\n`);
      return EXIT.ok;
    }
    const text = summaryTable(summaries, now, {
      allNamespaces: options.allNamespaces,
      wide: options.output === 'wide',
    });
    io.stdout.write(`${text}\n`);
    return EXIT.ok;
  }
  const connector = await readConnector(ctx, options.name);
  const facts = await gatherFacts({
    api: ctx.api,
    connector,
    operatorNamespace: options.operatorNamespace,
    defaults: options.defaultControlPlane,
  });
  const report = statusReport(facts);
  if (options.output === 'json' || options.output === 'yaml') {
    io.stdout.write(serialize(report, options.output));
  } else {
    io.stdout.write(statusReportText(report, facts.at));
  }
  return EXIT.ok;
}

/** `jobfleet agent`: runs the agent for this host. */
import os from 'node:os';
import path from 'node:path';
import { Command, Option } from 'commander';
import { Agent, TaskRunner, defaultIp, defaultStateDir, localOsType } from '@jobfleet/agent';
import type { Agent as AgentType } from '@jobfleet/agent';
import { createAgentLogger } from './agent-log.js';
import type { LogFormat } from './agent-log.js';

export interface AgentFlags {
  server: string;
  token: string;
  ip?: string;
  cloudId: string;
  biz?: string;
  hostname?: string;
  stateDir?: string;
  fileRoot?: string;
  filePort?: string;
  scriptDir?: string;
  logFormat?: string;
  reconnectMaxMs?: string;
  returnHomeMs?: string;
}

/** Agent log lines: JSON, or pretty and coloured on a terminal, with the server's fields. */
export function agentLogger(flags: AgentFlags, ip: string, stream: NodeJS.WriteStream) {
  const format = (
    ['auto', 'json', 'pretty'].includes(flags.logFormat ?? '') ? flags.logFormat : 'auto'
  ) as LogFormat;
  return createAgentLogger({ service: 'jobfleet-agent', ip }, format, stream);
}

function positiveInt(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new Error(`--${name} must be a non-negative integer, got "${v}"`);
  return n;
}

export function createAgent(flags: AgentFlags, stream: NodeJS.WriteStream): AgentType {
  const ip = flags.ip ?? defaultIp() ?? '127.0.0.1';
  const logger = agentLogger(flags, ip, stream);
  // Every host without IPv4 would register as the same 127.0.0.1 and take each other's place.
  if (!flags.ip && !defaultIp())
    logger.warn('no IPv4 address besides loopback: this host registers as 127.0.0.1 (give --ip)');
  const cloudId = positiveInt('cloud-id', flags.cloudId);
  const stateDir = flags.stateDir ?? defaultStateDir(cloudId, ip);
  const agent = new Agent({
    serverUrl: flags.server,
    bootstrapToken: flags.token,
    host: {
      ip,
      // An address given names another host (several agents on one machine); the machine's own
      // IPv6 address is reported only with the machine's own IPv4 one.
      ipv6: flags.ip ? '' : (defaultIp('IPv6') ?? ''),
      cloudId,
      hostname: flags.hostname ?? os.hostname(),
      osType: localOsType(),
    },
    ...(flags.biz !== undefined ? { bizId: positiveInt('biz', flags.biz) } : {}),
    ...(flags.reconnectMaxMs !== undefined
      ? { backoffCapMs: Math.max(100, positiveInt('reconnect-max-ms', flags.reconnectMaxMs)) }
      : {}),
    ...(flags.returnHomeMs !== undefined
      ? { returnHomeMs: positiveInt('return-home-ms', flags.returnHomeMs) }
      : {}),
    stateDir,
    log: (level, msg, fields) => logger[level](fields ?? {}, msg),
    createRunner: (reports, servers) =>
      new TaskRunner(stateDir, reports, {
        servers: () => servers.fromCurrent(),
        ...(flags.fileRoot ? { fileRoot: path.resolve(flags.fileRoot) } : {}),
        fileHost: ip,
        filePort: positiveInt('file-port', flags.filePort ?? '0'),
        ...(flags.scriptDir ? { scriptDir: path.resolve(flags.scriptDir) } : {}),
        log: (level, msg, fields) => logger[level](fields ?? {}, msg),
      }),
  });
  agent.on('state', (s: string) => logger.info(`state ${s}`));
  return agent;
}

export function agentCommand(): Command {
  return new Command('agent')
    .description('run the agent for this host: one connection to a server, runs its tasks')
    .addOption(
      new Option(
        '--server <urls>',
        'server base URL, or the servers of a cluster separated by commas (starts at a random one, moves on when one fails)',
      )
        .env('JOBFLEET_SERVER')
        .makeOptionMandatory(),
    )
    .addOption(
      new Option('--token <token>', 'agent bootstrap token')
        .env('JOBFLEET_AGENT_BOOTSTRAP_TOKEN')
        .makeOptionMandatory(),
    )
    .addOption(
      new Option('--ip <ip>', 'IP this host is known by (default: first non-loopback IPv4)').env(
        'JOBFLEET_AGENT_IP',
      ),
    )
    .addOption(
      new Option('--cloud-id <id>', 'BK-Net (cloud area) id').env('JOBFLEET_AGENT_CLOUD_ID').default('0'),
    )
    .addOption(
      new Option('--biz <id>', 'ask to be placed in this business at registration').env('JOBFLEET_AGENT_BIZ'),
    )
    .addOption(new Option('--hostname <name>', 'hostname to report').env('JOBFLEET_AGENT_HOSTNAME'))
    .addOption(
      new Option(
        '--state-dir <dir>',
        'where the agent keeps its token and task spool (default ~/.jobfleet/agent/<cloud>-<ip>)',
      ).env('JOBFLEET_AGENT_STATE_DIR'),
    )
    .addOption(
      new Option(
        '--file-root <dir>',
        'place every host path a file task reads or writes under this directory (/a/b -> <dir>/a/b), ' +
          'so that several agents on one machine each have their own files',
      ).env('JOBFLEET_AGENT_FILE_ROOT'),
    )
    .addOption(
      new Option(
        '--file-port <port>',
        'port of the file server peers download from; it listens on --ip (0 = any free port)',
      )
        .env('JOBFLEET_AGENT_FILE_PORT')
        .default('0'),
    )
    .addOption(
      new Option(
        '--script-dir <dir>',
        "where each script gets its private working directory, created for the run and removed once the server has its result (default: systemd's $RUNTIME_DIRECTORY, else the temporary directory); a tmpfs such as /run saves the disk's journal work on every task",
      ).env('JOBFLEET_AGENT_SCRIPT_DIR'),
    )
    .addOption(
      new Option('--log-format <format>', 'auto (pretty on a terminal, JSON otherwise), json or pretty')
        .env('JOBFLEET_LOG_FORMAT')
        .choices(['auto', 'json', 'pretty'])
        .default('auto'),
    )
    .addOption(
      new Option(
        '--reconnect-max-ms <ms>',
        'longest wait between reconnect attempts (exponential backoff with full jitter up to it); ' +
          'large fleets keep it high so that a restarted server is not stormed',
      )
        .env('JOBFLEET_AGENT_RECONNECT_MAX_MS')
        .default('30000'),
    )
    .addOption(
      new Option(
        '--return-home-ms <ms>',
        'with several servers: an agent that moved on from the one it started at checks it again ' +
          'about this long after (doubling while it fails) and moves back once it answers and no task is held; 0: never',
      )
        .env('JOBFLEET_AGENT_RETURN_HOME_MS')
        .default('60000'),
    )
    .action(async (flags: AgentFlags) => {
      const agent = createAgent(flags, process.stdout);
      const stop = () => void agent.stop().then(() => process.exit(0));
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      agent.start();
    });
}

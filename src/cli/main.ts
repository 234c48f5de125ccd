/**
 * The `classify2d` command: reconstruct, simulate, score and info.
 * Exit status: 0 done, 1 failed (a bad file or a failed run), 2 invalid command line,
 * 130 interrupted (after writing what was finished).
 */
import { formatHelp, HELP_WIDTH, parseCommand, UsageError, wrap, type CommandSpec, type ParsedCommand } from './args.js';
import type { CommandContext } from './context.js';
import { infoCommand, runInfo } from './info.js';
import { reconstructCommand, runReconstruct } from './reconstruct.js';
import { runScore, scoreCommand } from './score.js';
import { runSimulate, simulateCommand } from './simulate.js';
import { packageVersion } from './version.js';

interface Command {
  spec: CommandSpec;
  run(parsed: ParsedCommand, context: CommandContext): Promise<number>;
}

const COMMANDS: readonly Command[] = [
  { spec: reconstructCommand, run: runReconstruct },
  { spec: simulateCommand, run: runSimulate },
  { spec: scoreCommand, run: runScore },
  { spec: infoCommand, run: runInfo },
];

function topLevelHelp(): string {
  const width = Math.max(...COMMANDS.map((command) => command.spec.name.length)) + 4;
  return [
    wrap(`classify2d ${packageVersion()}: 2-D templates from noisy images with unknown rotation, shift and scale, on WebGPU.`, HELP_WIDTH, 0),
    '',
    'usage: classify2d <command> [arguments]',
    '       classify2d help <command>',
    '',
    'commands:',
    ...COMMANDS.map(({ spec }) => `  ${spec.name.padEnd(width)}${spec.summary.split('. ')[0].replace(/\.$/, '')}.`),
    '',
    "Run 'classify2d <command> --help' for a command's arguments and options.",
    '',
  ].join('\n');
}

/**
 * Runs the command line `args` (without node and the script) and returns the exit status.
 * Errors are printed, not raised.
 */
export async function main(args: readonly string[], context: CommandContext): Promise<number> {
  const [name, ...rest] = args;
  const helpTopic = name === 'help' ? COMMANDS.find((candidate) => candidate.spec.name === rest[0]) : undefined;
  if (helpTopic !== undefined) {
    context.stdout.write(formatHelp(helpTopic.spec));
    return 0;
  }
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    context.stdout.write(topLevelHelp());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version') {
    context.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  const command = COMMANDS.find((candidate) => candidate.spec.name === name);
  if (command === undefined) {
    context.log(`classify2d: unknown command '${name}'; the commands are ${COMMANDS.map((c) => c.spec.name).join(', ')}`);
    return 2;
  }
  try {
    const parsed = parseCommand(command.spec, rest);
    if (parsed.values.get('help') === true) {
      context.stdout.write(formatHelp(command.spec));
      return 0;
    }
    return await command.run(parsed, context);
  } catch (error) {
    if (error instanceof UsageError) {
      context.log(error.message);
      context.log(`Run 'classify2d ${error.command} --help' for the arguments and options.`);
      return 2;
    }
    const message = error instanceof Error ? `${error.name === 'Error' ? '' : `${error.name}: `}${error.message}` : String(error);
    context.log(`classify2d ${name}: ${message}`);
    return 1;
  }
}

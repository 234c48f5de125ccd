/**
 * Flags of the command line: their types, help text and validation, on top of Node's
 * util.parseArgs. Every value is checked before any work starts, and an error names the
 * command, the flag and the value.
 */
import { parseArgs } from 'node:util';

/** A mistake in the command line: an unknown flag, a missing argument or an invalid value. */
export class UsageError extends Error {
  override name = 'UsageError';

  /** @param command the subcommand whose help the message points to */
  constructor(
    readonly command: string,
    message: string,
  ) {
    super(message);
  }
}

export type FlagKind = 'integer' | 'number' | 'string' | 'boolean' | 'list';

export interface Flag {
  /** Long name without the dashes, such as 'batch-size'. */
  name: string;
  kind: FlagKind;
  /** Description of the value the flag sets, with its unit and default. */
  help: string;
  /** Placeholder for the value in the help text, such as N or DIR. */
  value?: string;
  /** One-letter alias, such as 'h' for -h. */
  short?: string;
  /** Allowed values of a string flag. */
  choices?: readonly string[];
  required?: boolean;
}

export type FlagValue = number | string | boolean | string[];

export interface ParsedCommand {
  positionals: string[];
  /** Values of the flags given, by long name; absent flags are absent. */
  values: Map<string, FlagValue>;
}

export interface CommandSpec {
  name: string;
  /** The usage line after `classify2d`, such as 'score <truth.mrc> <result.mrc>'. */
  usage: string;
  /** Description of the command. Its first sentence is its line in the list of commands. */
  summary: string;
  /** Positional arguments: exactly this many. */
  positionals: number;
  flags: readonly Flag[];
  /** Paragraphs printed after the flags. */
  notes?: readonly string[];
}

const HELP_FLAG: Flag = { name: 'help', short: 'h', kind: 'boolean', help: 'Print this help and exit.' };

/**
 * Parses a subcommand's arguments. `--help` (or `-h`) before any `--` wins over every other
 * argument, so that it prints the help even in a command line with mistakes. The caller
 * checks for it before looking at the other values.
 * @throws UsageError for an unknown flag, a missing value, a flag other than a list given
 *   more than once, the wrong number of positional arguments, a number that does not parse,
 *   or a value outside a flag's choices
 */
export function parseCommand(spec: CommandSpec, args: readonly string[]): ParsedCommand {
  const end = args.indexOf('--');
  const options = end < 0 ? args : args.slice(0, end);
  if (options.includes('--help') || options.includes('-h')) {
    return { positionals: [], values: new Map([['help', true]]) };
  }

  const flags = [...spec.flags, HELP_FLAG];
  const config: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {};
  for (const flag of flags) {
    config[flag.name] = { type: flag.kind === 'boolean' ? 'boolean' : 'string', multiple: flag.kind === 'list' };
    // parseArgs rejects a short property that is present but undefined.
    if (flag.short !== undefined) config[flag.name].short = flag.short;
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...args], options: config, allowPositionals: true, strict: true, tokens: true });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new UsageError(spec.name, `classify2d ${spec.name}: ${message.replace(/\s+/g, ' ').trim()}`);
  }
  rejectRepeatedFlags(spec, flags, parsed.tokens ?? []);

  const values = new Map<string, FlagValue>();
  for (const flag of flags) {
    const raw = parsed.values[flag.name];
    if (raw === undefined) continue;
    values.set(flag.name, convert(spec.name, flag, raw as string | boolean | string[]));
  }

  for (const flag of spec.flags) {
    if (flag.required && !values.has(flag.name)) {
      throw new UsageError(spec.name, `classify2d ${spec.name}: the required flag --${flag.name} is missing (${flag.help.replace(/\.$/, '')})`);
    }
  }
  if (parsed.positionals.length !== spec.positionals) {
    const given = parsed.positionals.length === 0 ? 'none' : parsed.positionals.map((p) => `'${p}'`).join(' ');
    throw new UsageError(
      spec.name,
      `classify2d ${spec.name}: expected ${spec.positionals} file argument${spec.positionals === 1 ? '' : 's'} ` +
        `(usage: classify2d ${spec.usage}), but got ${given}`,
    );
  }
  return { positionals: parsed.positionals, values };
}

/** Raises for a flag other than a list that is given more than once, because parseArgs would keep only the last value. */
function rejectRepeatedFlags(spec: CommandSpec, flags: readonly Flag[], tokens: NonNullable<ReturnType<typeof parseArgs>['tokens']>): void {
  for (const flag of flags) {
    if (flag.kind === 'list') continue;
    const given: string[] = [];
    for (const token of tokens) {
      if (token.kind !== 'option' || token.name !== flag.name) continue;
      given.push(token.value === undefined ? token.rawName : `'${token.value}'`);
    }
    if (given.length < 2) continue;
    throw new UsageError(
      spec.name,
      `classify2d ${spec.name}: --${flag.name} is given ${given.length} times (${given.join(', ')}); give it once`,
    );
  }
}

function convert(command: string, flag: Flag, raw: string | boolean | string[]): FlagValue {
  if (flag.kind === 'boolean' || flag.kind === 'list') return raw;
  const text = raw as string;
  const invalid = (rule: string) =>
    new UsageError(command, `classify2d ${command}: --${flag.name} is '${text}'; it must be ${rule}`);
  if (flag.kind === 'string') {
    if (flag.choices && !flag.choices.includes(text)) throw invalid(`one of ${flag.choices.join(', ')}`);
    return text;
  }
  const number = text.trim() === '' ? NaN : Number(text);
  if (flag.kind === 'integer' && !Number.isSafeInteger(number)) throw invalid('an integer');
  if (!Number.isFinite(number)) throw invalid('a finite number');
  return number;
}

/** Width that help text is wrapped to. */
export const HELP_WIDTH = 88;

/** Wraps text at spaces to lines of at most `width` characters, indenting every line after the first. */
export function wrap(text: string, width: number, indent: number): string {
  const lead = /^ */.exec(text)![0];
  const lines: string[] = [];
  let line = lead;
  let empty = true;
  for (const word of text.slice(lead.length).split(' ')) {
    if (!empty && word !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = ' '.repeat(indent) + word;
    } else {
      line = empty ? line + word : `${line} ${word}`;
    }
    empty = false;
  }
  lines.push(line);
  return lines.join('\n');
}

/** Formats the help of a subcommand: usage, summary, flags with their value placeholders, notes. */
export function formatHelp(spec: CommandSpec): string {
  const flags = [...spec.flags, HELP_FLAG];
  const names = flags.map((flag) => {
    const placeholder = flag.kind === 'boolean' ? '' : ` ${flag.value ?? (flag.kind === 'string' ? 'NAME' : 'N')}`;
    const short = flag.short === undefined ? '' : `, -${flag.short}`;
    return `  --${flag.name}${placeholder}${short}`;
  });
  const width = Math.max(...names.map((name) => name.length)) + 2;
  const lines = [`usage: classify2d ${spec.usage}`, '', wrap(spec.summary, HELP_WIDTH, 0), '', 'options:'];
  flags.forEach((flag, i) => {
    const choices = flag.choices ? ` One of: ${flag.choices.join(', ')}.` : '';
    const required = flag.required ? ' Required.' : '';
    lines.push(wrap(`${names[i].padEnd(width)}${flag.help}${choices}${required}`, HELP_WIDTH, width));
  });
  for (const note of spec.notes ?? []) lines.push('', wrap(note, HELP_WIDTH, 0));
  return `${lines.join('\n')}\n`;
}

/** Returns a number flag's value, or undefined when the flag was not given. */
export function numberFlag(parsed: ParsedCommand, name: string): number | undefined {
  const value = parsed.values.get(name);
  return typeof value === 'number' ? value : undefined;
}

/** Returns a string flag's value, or undefined when the flag was not given. */
export function stringFlag(parsed: ParsedCommand, name: string): string | undefined {
  const value = parsed.values.get(name);
  return typeof value === 'string' ? value : undefined;
}

export function booleanFlag(parsed: ParsedCommand, name: string): boolean {
  return parsed.values.get(name) === true;
}

export function listFlag(parsed: ParsedCommand, name: string): string[] {
  const value = parsed.values.get(name);
  return Array.isArray(value) ? value : [];
}

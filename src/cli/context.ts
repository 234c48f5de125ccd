/** The process state a subcommand runs with: its output streams and the interrupt signal. */
import type { ProgressStream } from './progress.js';

export interface CommandContext {
  /** Results meant for other programs, such as JSON. */
  stdout: { write(text: string): boolean };
  /** Progress and messages for the person at the terminal. */
  stderr: ProgressStream;
  /** Writes one message line to stderr. */
  log(message: string): void;
  /** Aborted at the first Ctrl-C (SIGINT) or SIGTERM. */
  interrupt: AbortSignal;
}

/** Returns a signal aborted at the first SIGINT or SIGTERM; the second one exits at once. */
function interruptSignal(): AbortSignal {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(signal === 'SIGINT' ? 130 : 143);
    controller.abort(new Error(`received ${signal}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return controller.signal;
}

/** Returns the context of a command run by this process: process.stdout, process.stderr and the signals. */
export function processContext(): CommandContext {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    log: (message) => process.stderr.write(`${message}\n`),
    interrupt: interruptSignal(),
  };
}

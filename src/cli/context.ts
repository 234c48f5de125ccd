/** The process state a subcommand runs with: its output streams and the interrupt signal. */
import { constants } from 'node:os';

import type { ProgressStream } from './progress.js';

export interface CommandContext {
  /** Results meant for other programs, such as JSON. */
  stdout: { write(text: string): boolean };
  /** Progress and messages for the person at the terminal. */
  stderr: ProgressStream;
  /** Writes one message line to stderr. */
  log(message: string): void;
  /** Aborted at the first Ctrl-C (SIGINT) or SIGTERM, with an InterruptError as its reason. */
  readonly interrupt: AbortSignal;
}

/** Reason of an aborted CommandContext.interrupt: the signal that the process received. */
export class InterruptError extends Error {
  override name = 'InterruptError';

  constructor(readonly signal: NodeJS.Signals) {
    super(`received ${signal}`);
  }
}

/**
 * Returns the exit status of a command stopped by `interrupt`: 128 plus the signal number,
 * as a shell reports a process killed by that signal (130 for SIGINT, 143 for SIGTERM).
 * A reason other than an InterruptError counts as SIGINT.
 */
export function interruptExitStatus(interrupt: AbortSignal): number {
  const signal = interrupt.reason instanceof InterruptError ? interrupt.reason.signal : 'SIGINT';
  return 128 + constants.signals[signal];
}

/**
 * Returns a signal aborted at the first SIGINT or SIGTERM. The second one kills the process
 * at once with the default action of that signal. process.exit would instead tear down the
 * reconstruction worker while Dawn runs native code in it, which aborts Node with a fatal
 * error (SIGABRT) in place of the status for the signal (seen with the webgpu package 0.6.2
 * on Node 20.20).
 */
function interruptSignal(): AbortSignal {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      process.kill(process.pid, signal);
      return;
    }
    controller.abort(new InterruptError(signal));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return controller.signal;
}

/**
 * Returns the context of a command run by this process: process.stdout, process.stderr and
 * the signals. The signal handlers are installed when a command first reads `interrupt`, so
 * Ctrl-C still ends simulate, score and info at once instead of being ignored.
 */
export function processContext(): CommandContext {
  let interrupt: AbortSignal | undefined;
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    log: (message) => process.stderr.write(`${message}\n`),
    get interrupt() {
      interrupt ??= interruptSignal();
      return interrupt;
    },
  };
}

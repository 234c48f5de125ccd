/**
 * Progress of a reconstruction on stderr: a bar redrawn in place on a terminal, and one
 * line per tenth of the run when stderr is a file or a pipe.
 */
import type { Progress } from '../reconstruct.js';

const BAR_WIDTH = 24;

/** Formats seconds as 42 s, 3 min 05 s or 1 h 02 min. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const whole = Math.round(seconds);
  if (whole < 60) return `${whole} s`;
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) return `${minutes} min ${String(whole % 60).padStart(2, '0')} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
}

export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): boolean;
}

export class ProgressBar {
  private lastTenth = new Map<string, number>();
  private drawn = false;

  constructor(
    private readonly stream: ProgressStream,
    private readonly maxEpochs: number,
  ) {}

  update(progress: Progress): void {
    const fraction = progress.totalSteps > 0 ? progress.step / progress.totalSteps : 0;
    const phase = progress.phase === 'full' ? '' : `${progress.phase}: `;
    const text =
      `${phase}epoch ${progress.epoch}/${this.maxEpochs}  step ${progress.step}/${progress.totalSteps}  ` +
      `σ ${progress.sigma.toPrecision(4)}  ${formatDuration(progress.elapsedSeconds)}, ` +
      `about ${formatDuration(progress.remainingSeconds)} left`;
    if (this.stream.isTTY) {
      const filled = Math.round(fraction * BAR_WIDTH);
      const bar = `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)} %`;
      const line = `${bar}  ${text}`.slice(0, Math.max(20, (this.stream.columns ?? 100) - 1));
      this.stream.write(`\r${line}\x1b[K`);
      this.drawn = true;
      return;
    }
    const tenth = Math.floor(fraction * 10);
    if (tenth > (this.lastTenth.get(progress.phase) ?? 0) || progress.step === 1) {
      this.lastTenth.set(progress.phase, tenth);
      this.stream.write(`${String(Math.floor(fraction * 100)).padStart(3)} %  ${text}\n`);
    }
  }

  /** Ends the bar's line so the next message starts on its own line. */
  finish(): void {
    if (this.drawn) this.stream.write('\n');
    this.drawn = false;
  }

  /** Writes a message on its own line, keeping the bar below it. */
  log(message: string): void {
    if (this.drawn) this.stream.write('\r\x1b[K');
    this.stream.write(`${message}\n`);
  }
}

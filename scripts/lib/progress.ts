/**
 * A progress bar for the administrators' commands, on standard error. On a terminal it redraws one line
 * (`\r`); otherwise (a log file, CI) it prints a plain line when a phase starts and at every quarter.
 */
export interface Progress {
  update(phase: string, done: number, total: number): void;
  /** Ends the bar (a newline on a terminal). */
  end(): void;
  /** Prints a message without breaking the bar. */
  log(line: string): void;
}

const WIDTH = 30;

export function createProgress(stream: NodeJS.WriteStream = process.stderr, options: { tty?: boolean } = {}): Progress {
  const tty = options.tty ?? stream.isTTY === true;
  let phase = '';
  let lastDraw = 0;
  let lastQuarter = -1;
  let drawn = false;
  const clear = () => {
    if (tty && drawn) stream.write('\r\x1b[2K');
    drawn = false;
  };
  return {
    update(p, done, total) {
      const ratio = total > 0 ? Math.min(1, done / total) : 0;
      if (tty) {
        const now = Date.now();
        if (p === phase && now - lastDraw < 80 && done < total) return;
        lastDraw = now;
        phase = p;
        const filled = Math.round(ratio * WIDTH);
        stream.write(`\r\x1b[2K[${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}] ${String(Math.round(ratio * 100)).padStart(3)}% ${p} ${done}/${total}`);
        drawn = true;
        return;
      }
      const quarter = Math.floor(ratio * 4);
      if (p !== phase || quarter > lastQuarter) {
        if (p !== phase) lastQuarter = -1;
        phase = p;
        lastQuarter = quarter;
        stream.write(`progress: ${p} ${done}/${total} (${Math.round(ratio * 100)}%)\n`);
      }
    },
    end() {
      if (tty && drawn) stream.write('\n');
      drawn = false;
    },
    log(line) {
      clear();
      stream.write(`${line}\n`);
    },
  };
}

/** Parses an X-Progress header of the form `phase done/total …`. */
export function parseProgress(header: string | null): { phase: string; done: number; total: number } | undefined {
  const m = /^(\S+) (\d+)\/(\d+)/.exec(header ?? '');
  return m ? { phase: m[1], done: Number(m[2]), total: Number(m[3]) } : undefined;
}

/** Runs a command (a script under scripts/, a shell line) as a child process and collects what it printed. */
import { spawn } from 'node:child_process';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCommand(cmd: string, args: string[], env: Record<string, string> = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** A script of this repository (`scripts/x.ts`), run with tsx like `npm run`. */
export const runScript = (script: string, args: string[], env: Record<string, string> = {}) => runCommand(process.execPath, ['--import', 'tsx', script, ...args], env);

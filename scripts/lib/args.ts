/** A small command-line parser: `--flag value`, `--flag=value`, repeatable flags, booleans, positionals. */
import { UsageError } from './fhir-client.ts';

export interface ArgSpec {
  /** Flags taking a value (the last one wins unless repeatable). */
  values?: string[];
  /** Flags taking a value that may be given several times. */
  repeatable?: string[];
  /** Flags without a value. */
  booleans?: string[];
}

export interface Args {
  positionals: string[];
  values: Map<string, string>;
  lists: Map<string, string[]>;
  flags: Set<string>;
}

export function parseArgs(argv: string[], spec: ArgSpec): Args {
  const out: Args = { positionals: [], values: new Map(), lists: new Map(), flags: new Set() };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--') || a === '--') {
      if (a !== '--') out.positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const flag = eq > 0 ? a.slice(0, eq) : a;
    const inline = eq > 0 ? a.slice(eq + 1) : undefined;
    if (spec.booleans?.includes(flag)) {
      if (inline !== undefined) throw new UsageError(`${flag} takes no value`);
      out.flags.add(flag);
      continue;
    }
    const takesValue = spec.values?.includes(flag) || spec.repeatable?.includes(flag);
    if (!takesValue) throw new UsageError(`unknown option ${flag}`);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new UsageError(`${flag} needs a value`);
    if (spec.repeatable?.includes(flag)) out.lists.set(flag, [...(out.lists.get(flag) ?? []), value]);
    else out.values.set(flag, value);
  }
  return out;
}

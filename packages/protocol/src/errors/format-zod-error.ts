import type { ZodError } from 'zod';

/**
 * One line per problem, naming the option, the value and what is accepted:
 * `JobCluster: option "nodePort": must be an integer 1..65535, got "abc"`. Unknown options get
 * a suggestion (`ip_addr` → did you mean `ipAddr`?), or what `dispyNames` says of a name that
 * Python dispy has and this project spells or does differently (`host` → `dispy's host is ipAddr here`).
 */
export function formatZodError(
  error: ZodError,
  where: string,
  known: readonly string[] = [],
  input?: unknown,
  dispyNames: Readonly<Record<string, string>> = {},
): string {
  return error.issues
    .map((issue) => {
      if (issue.code === 'unrecognized_keys') {
        return issue.keys
          .map((key) => {
            if (Object.hasOwn(dispyNames, key)) return `${where}: unknown option "${key}": ${dispyNames[key]}`;
            const suggestion = suggestOption(key, known);
            return `${where}: unknown option "${key}"${suggestion ? `; did you mean "${suggestion}"?` : ''}`;
          })
          .join('\n');
      }
      const option = issue.path.join('.');
      const value = valueAt(input, issue.path);
      const got = value === undefined ? '' : `, got ${preview(value)}`;
      return `${where}: option "${option}": ${issue.message}${got}`;
    })
    .join('\n');
}

/** The known option closest to `key`: its camelCase spelling, or one or two edits away. */
export function suggestOption(key: string, known: readonly string[]): string | undefined {
  const camel = key.replace(/[_-]+([a-z0-9])/gi, (_, c: string) => c.toUpperCase());
  const exact = known.find((name) => name.toLowerCase() === camel.toLowerCase());
  if (exact) return exact;
  let best: string | undefined;
  let bestDistance = 3;
  for (const name of known) {
    const distance = editDistance(camel.toLowerCase(), name.toLowerCase());
    if (distance < bestDistance) {
      best = name;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}

function valueAt(input: unknown, path: (string | number)[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string | number, unknown>)[key];
  }
  return value;
}

function preview(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  try {
    const text = JSON.stringify(value);
    return text === undefined ? String(value) : text.length > 60 ? `${text.slice(0, 57)}...` : text;
  } catch {
    return String(value);
  }
}

// eslint-scope ships no type declarations; this is the small part dispy uses.
declare module 'eslint-scope' {
  interface Reference {
    identifier: { name: string; start?: number };
  }
  interface Scope {
    through: Reference[];
  }
  interface ScopeManager {
    globalScope: Scope;
  }
  export function analyze(
    ast: unknown,
    options: { ecmaVersion: number; sourceType: 'script' | 'module'; fallback?: 'iteration' },
  ): ScopeManager;
}

// @ts-check
// ESLint: typescript-eslint's type-checked recommended rules on TypeScript sources and tests,
// JavaScript's recommended rules on the scripts (bench, examples, fixtures). Formatting is
// Prettier's job (`pnpm format`), not ESLint's.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  {
    ignores: [
      '**/dist/',
      '**/node_modules/',
      '**/coverage/',
      'packages/protocol/src/schema/generated.*',
      '.bench-tmp/',
      '.packs/',
      '**/_dispy_*',
    ],
  },
  js.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2023, sourceType: 'module', globals: { ...globals.node } },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
  },
  {
    // The monitor's page: a plain browser script, served as it is.
    files: ['packages/monitor/assets/**/*.js'],
    languageOptions: { sourceType: 'script', globals: { ...globals.browser } },
  },
  {
    files: ['**/*.ts', '**/*.mts', '**/*.cts'],
    extends: [...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: {
        // Each file is checked with the nearest tsconfig.json (a package's src, a test folder's,
        // testing/'s); config files outside them use a default project.
        projectService: {
          allowDefaultProject: ['*.ts', 'packages/*/*.ts', 'apps/*/*.ts'],
          maximumDefaultProjectFileMatchCount_THIS_WILL_SLOW_DOWN_LINTING: 32,
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // A promise must be awaited, returned, given a handler, or marked deliberate with `void`.
      '@typescript-eslint/no-floating-promises': ['error', { ignoreVoid: true }],
      '@typescript-eslint/no-misused-promises': 'error',
      // dispy ships whatever function or class it is given: `Function` is the honest type there.
      '@typescript-eslint/no-unsafe-function-type': 'off',
      // `_name` marks a parameter or binding kept for its position.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // An async method without await still turns a throw into a rejection, and keeps an API's
      // methods uniformly promise-returning: that is why such methods are async.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    // Tests ship functions that run alone on a node, so they `require` and read untyped globals;
    // and they hand dispy functions of every shape on purpose (methods, async functions without
    // await, functions built from source text).
    files: ['**/test/**/*.ts', '**/*.test.ts'],
    rules: {
      '@typescript-eslint/unbound-method': 'off',
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-implied-eval': 'off',
      '@typescript-eslint/no-require-imports': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
    },
  },
);

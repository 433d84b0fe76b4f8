// Expo's shared rules (React, hooks, imports, TypeScript) over the whole app.
const { defineConfig } = require('eslint/config');
const expoConfig = require('eslint-config-expo/flat');

module.exports = defineConfig([
  expoConfig,
  { ignores: ['dist/*', 'node_modules/*', '.expo/*', 'e2e-artifacts/*', 'src/api/schema.d.ts'] },
]);

module.exports = {
  preset: 'jest-expo',
  // Generous on purpose: no test may depend on the machine being idle (see test/setup.ts).
  testTimeout: 120_000,
  setupFilesAfterEnv: ['<rootDir>/test/setup.ts'],
  testMatch: ['<rootDir>/test/**/*.test.ts?(x)'],
  transformIgnorePatterns: [
    'node_modules/(?!((jest-)?react-native|@react-native(-community)?)|expo(nent)?|@expo(nent)?/.*|@expo-google-fonts/.*|react-navigation|@react-navigation/.*|react-native-sse|openapi-fetch)',
  ],
};

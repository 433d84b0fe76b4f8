// Screens under test run against the fake API in test/fakeApi.ts; nothing reaches the network.

import { fireEvent, screen, waitFor } from '@testing-library/react-native';

import { problem } from './fakeApi';
import { renderApp } from './renderApp';
import { settle } from './settle';

jest.mock('../src/stream/eventStream', () => ({ openEventStream: () => () => {} }));

async function openBotConfig() {
  const ctx = await renderApp();
  fireEvent.press(screen.getByTestId('tab-bot'));
  await screen.findByTestId('field-leverage');
  await settle();
  return ctx;
}

test("the form starts from the default bot's configuration", async () => {
  await openBotConfig();
  expect(screen.getByTestId('field-name').props.value).toBe('My bot');
  expect(screen.getByTestId('field-symbols').props.value).toBe('BTC/USDT');
  expect(screen.getByTestId('field-cycleIntervalSeconds').props.value).toBe('900');
  expect(screen.getByTestId('timeframe-15m').props.accessibilityState.checked).toBe(true);
  expect(screen.getByTestId('field-weight-technical').props.value).toBe('0.4');
});

test('values outside the server limits are refused next to their fields and nothing is sent', async () => {
  const { server } = await openBotConfig();
  fireEvent.changeText(screen.getByTestId('field-leverage'), '51');
  fireEvent.changeText(screen.getByTestId('field-riskPerTradePct'), '0.05');
  fireEvent.changeText(screen.getByTestId('field-maxOpenPositions'), '1.5');
  fireEvent.changeText(screen.getByTestId('field-cycleIntervalSeconds'), '59');
  fireEvent.changeText(screen.getByTestId('field-symbols'), 'btc/usdt, BTC/USDT');
  fireEvent.press(screen.getByTestId('bot-save'));
  expect((await screen.findByTestId('error-leverage')).props.children).toBe('must be between 1 and 50');
  expect(screen.getByTestId('error-riskPerTradePct').props.children).toBe('must be between 0.1 and 5');
  expect(screen.getByTestId('error-maxOpenPositions').props.children).toBe('enter a whole number');
  expect(screen.getByTestId('error-cycleIntervalSeconds').props.children).toBe('must be between 60 and 86400');
  expect(screen.getByTestId('error-symbols').props.children).toBe('each symbol may appear only once'); // typed in lower case, stored upper
  expect(server.callsTo('PUT', '/v1/bot-config')).toHaveLength(0);
});

test('saving sends every field, so nothing silently resets to a default', async () => {
  const { server } = await openBotConfig();
  fireEvent.changeText(screen.getByTestId('field-name'), 'Swing');
  fireEvent.changeText(screen.getByTestId('field-symbols'), 'BTC/USDT, ETH/USDT:USDT');
  fireEvent.press(screen.getByTestId('timeframe-4h'));
  fireEvent.changeText(screen.getByTestId('field-leverage'), '3');
  fireEvent.press(screen.getByTestId('brain-gpt'));
  fireEvent.changeText(screen.getByTestId('field-brainModel'), 'gpt-4o');
  fireEvent.press(screen.getByTestId('bot-save'));
  await screen.findByTestId('bot-saved');
  expect(server.callsTo('PUT', '/v1/bot-config')[0]!.body).toEqual({
    name: 'Swing',
    symbols: ['BTC/USDT', 'ETH/USDT:USDT'],
    timeframes: ['15m', '1h', '4h'],
    leverage: 3,
    riskPerTradePct: 1,
    maxOpenPositions: 1,
    dailyLossLimitPct: 3,
    cycleIntervalSeconds: 900,
    brain: 'gpt',
    brainModel: 'gpt-4o',
    mode: 'paper',
    exchangeKeyId: null,
    agentWeights: { technical: 0.4, fibonacci: 0.2, gann: 0.15, sentiment: 0.25, positions: 0 },
  });
});

test('live mode without a real key is refused like the server would', async () => {
  await openBotConfig();
  fireEvent.press(screen.getByTestId('mode-live'));
  fireEvent.press(screen.getByTestId('bot-save'));
  expect((await screen.findByTestId('error-exchangeKeyId')).props.children).toBe('live mode needs a linked exchange key');
});

test("the server's 422 field errors show next to the fields they name", async () => {
  const { server } = await openBotConfig();
  server.overrides.set('PUT /v1/bot-config', () =>
    problem(422, 'agentWeights: at least one agent needs a weight above 0', [
      { field: 'agentWeights', message: 'at least one agent needs a weight above 0' },
      { field: 'symbols[0]', message: 'no such market on the exchange' },
    ]),
  );
  fireEvent.press(screen.getByTestId('bot-save'));
  expect((await screen.findByTestId('error-agentWeights')).props.children).toBe('at least one agent needs a weight above 0');
  expect(screen.getByTestId('error-symbols').props.children).toBe('item 1: no such market on the exchange');
  expect(screen.getByText('Please correct the highlighted fields.')).toBeTruthy();
  await waitFor(() => expect(screen.getByTestId('bot-save').props.accessibilityState.disabled).toBe(false));
});

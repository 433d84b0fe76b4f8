import { act, fireEvent, screen, waitFor, within } from '@testing-library/react-native';
import * as Notifications from 'expo-notifications';

import type { StreamEvent } from '../src/stream/eventStream';
import { FakeApi, makeBot, makeDecision } from './fakeApi';
import { renderApp } from './renderApp';
import { settle } from './settle';

// The stream's transport (SSE over XHR) is replaced by a handle the test pushes events through.
const mockStream = { listeners: [] as ((event: StreamEvent) => void)[] };
jest.mock('../src/stream/eventStream', () => ({
  openEventStream: (_backend: unknown, onEvent: (event: StreamEvent) => void, onStatus: (s: string) => void) => {
    mockStream.listeners.push(onEvent);
    onStatus('live');
    return () => {
      mockStream.listeners = mockStream.listeners.filter((l) => l !== onEvent);
    };
  },
}));

function emit(event: StreamEvent) {
  act(() => mockStream.listeners.forEach((listener) => listener(event)));
}

beforeEach(() => {
  mockStream.listeners = [];
});

function serverWithActivity() {
  const server = new FakeApi();
  server.bots[0]!.active = true;
  server.decisions = [makeDecision({ id: 'd1', action: 'WAIT', reasons: ['no clear trend'] })];
  server.positions = [{ symbol: 'BTC/USDT', side: 'long', size: 0.01, entryPrice: 64000, unrealizedPnl: 12.5 }];
  server.performance = { realizedPnl: 30, unrealizedPnl: 12.5 };
  server.orders = [
    { id: 'o1', botId: server.bots[0]!.id, symbol: 'BTC/USDT', side: 'buy', type: 'market', status: 'filled', amount: 0.01, price: 64000, clientOrderId: 'q-1', createdAt: '2026-01-01T00:15:01Z' },
  ];
  return server;
}

test('Home shows each bot with its status, PnL, open positions and latest decisions', async () => {
  await renderApp({ server: serverWithActivity() });
  const card = screen.getByTestId('bot-My bot');
  expect(within(card).getByTestId('bot-status').props.children).toBe('● Running');
  expect(within(card).getByTestId('bot-pnl').props.children).toBe('+42.5');
  expect(within(card).getByText(/Long 0.01 BTC\/USDT @ 64,000/)).toBeTruthy();
  expect(within(card).getByText(/Wait · BTC\/USDT · 72% confidence/)).toBeTruthy();
  expect(screen.getByTestId('stream-status').props.children).toBe('Live updates on');
});

test('a decision from the stream appears on Home without a reload', async () => {
  const { server } = await renderApp({ server: serverWithActivity() });
  const before = server.calls.length;
  emit({ type: 'decision', data: makeDecision({ id: 'd2', action: 'OPEN_SHORT', symbol: 'BTC/USDT', confidence: 0.9 }) });
  expect(await screen.findByText(/Open short · BTC\/USDT · 90% confidence/)).toBeTruthy();
  expect(server.calls.length).toBe(before);
});

test('a bot event from the stream updates its status', async () => {
  await renderApp({ server: serverWithActivity() });
  emit({ type: 'bot', data: makeBot({ active: false, pausedReason: 'The exchange refused the key.' }) });
  expect(await screen.findByText('The exchange refused the key.')).toBeTruthy();
  expect(screen.getByTestId('bot-status').props.children).toBe('⏸ Paused');
});

test('Start asks the server to start the bot and shows it running', async () => {
  const { server } = await renderApp();
  fireEvent.press(screen.getByTestId('bot-start'));
  await screen.findByTestId('bot-stop');
  expect(server.callsTo('POST', `/v1/bots/${server.bots[0]!.id}/start`)).toHaveLength(1);
  expect(screen.getByTestId('bot-status').props.children).toBe('● Running');
});

test('Activity lists decisions with their reasons and the orders, and adds new ones live', async () => {
  const server = serverWithActivity();
  await renderApp({ server });
  fireEvent.press(screen.getByTestId('bot-open-activity'));
  await screen.findByText('• no clear trend');
  expect(screen.getByText(/BUY 0.01 BTC\/USDT · market · filled/)).toBeTruthy();
  emit({ type: 'decision', data: makeDecision({ id: 'd3', reasons: ['breakout above resistance'] }) });
  emit({ type: 'order', data: { ...server.orders[0]!, id: 'o2', side: 'sell', status: 'open' } });
  expect(await screen.findByText('• breakout above resistance')).toBeTruthy();
  expect(screen.getByText(/SELL 0.01 BTC\/USDT · market · open/)).toBeTruthy();
  expect(screen.getAllByTestId('decision')).toHaveLength(2);
});

test('a decision of another bot does not appear on this one', async () => {
  await renderApp({ server: serverWithActivity() });
  fireEvent.press(screen.getByTestId('bot-open-activity'));
  await screen.findByText('• no clear trend');
  emit({ type: 'decision', data: makeDecision({ id: 'x', botId: 'another-bot', reasons: ['not mine'] }) });
  await settle();
  expect(screen.queryByText('• not mine')).toBeNull();
});

test('Settings: notification preferences are saved as they are switched', async () => {
  const { server } = await renderApp();
  fireEvent.press(screen.getByTestId('tab-settings'));
  const toggle = await screen.findByTestId('pref-orders');
  fireEvent(toggle, 'valueChange', false);
  await waitFor(() => expect(server.preferences).toEqual({ decisions: true, orders: false, botStatus: true }));
});

test('Settings: enabling push asks for permission and registers the device token with the API', async () => {
  const { server } = await renderApp();
  fireEvent.press(screen.getByTestId('tab-settings'));
  fireEvent.press(await screen.findByTestId('push-enable'));
  expect(await screen.findByText('This device will receive notifications.')).toBeTruthy();
  expect(Notifications.requestPermissionsAsync).toHaveBeenCalled();
  expect(server.devices).toEqual([{ token: 'apns-device-token', platform: 'ios' }]);
  // Logging out unregisters the device, so the next user of the phone gets nothing of this account.
  fireEvent.press(screen.getByTestId('logout'));
  await screen.findByTestId('screen-login');
  expect(server.devices).toEqual([]);
});

test('Settings: a refused permission says where to turn it on and registers nothing', async () => {
  jest.mocked(Notifications.requestPermissionsAsync).mockResolvedValueOnce({ status: 'denied' } as never);
  const { server } = await renderApp();
  fireEvent.press(screen.getByTestId('tab-settings'));
  fireEvent.press(await screen.findByTestId('push-enable'));
  expect(await screen.findByText(/Turn them on in the system settings/)).toBeTruthy();
  expect(server.devices).toEqual([]);
});

test('tapping a notification opens the activity of the bot it is about', async () => {
  const server = serverWithActivity();
  const second = makeBot({ id: '22222222-2222-4222-8222-222222222222', name: 'Second', isDefault: false });
  server.bots.push(second);
  server.decisions.push(makeDecision({ id: 'd9', botId: second.id, reasons: ['second bot reason'] }));
  await renderApp({ server });
  const listen = jest.mocked(Notifications.addNotificationResponseReceivedListener);
  const onTap = listen.mock.calls.at(-1)![0];
  act(() => onTap({ notification: { request: { content: { data: { botId: second.id } } } } } as never));
  expect(await screen.findByText('• second bot reason')).toBeTruthy();
  expect(screen.getByTestId('activity-bot-Second').props.accessibilityState.checked).toBe(true);
});

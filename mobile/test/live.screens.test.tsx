import { act, fireEvent, screen, waitFor, within } from '@testing-library/react-native';
import * as Notifications from 'expo-notifications';

import type { StreamEvent } from '../src/stream/eventStream';
import { FakeApi, makeBot, makeDecision, makeEvent, makeOrder, makePerformance, makePosition } from './fakeApi';
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
  server.positions = [
    makePosition(),
    makePosition({ id: 'p0', symbol: 'ETH/USDT', side: 'short', status: 'closed', amount: '0.2', entryPrice: '3000', unrealizedPnl: '0', realizedPnl: '30' }),
  ];
  server.performance = makePerformance({ realizedPnl: '30', unrealizedPnl: '12.5', returnPct: 0.425, winRate: 1, openPositions: 1, closedPositions: 1 });
  server.orders = [makeOrder()];
  return server;
}

test('Home shows each bot with its status, PnL, open positions and latest decisions', async () => {
  await renderApp({ server: serverWithActivity() });
  const card = screen.getByTestId('bot-My bot');
  expect(within(card).getByTestId('bot-status').props.children).toBe('● Running');
  expect(within(card).getByTestId('bot-pnl').props.children).toBe('+42.5');
  expect(within(card).getByText(/Long 0.01 BTC\/USDT @ 64000/)).toBeTruthy();
  expect(within(card).getAllByTestId('position')).toHaveLength(1); // closed positions are not open ones
  expect(within(card).getByText(/Wait · BTC\/USDT · 72% confidence/)).toBeTruthy();
  expect(screen.getByTestId('stream-status').props.children).toBe('Live updates on');
});

test('a decision event from the stream brings the new decision onto Home', async () => {
  const { server } = await renderApp({ server: serverWithActivity() });
  server.decisions.unshift(makeDecision({ id: 'd2', action: 'OPEN_SHORT', symbol: 'BTC/USDT', confidence: 0.9 }));
  emit(makeEvent('decision'));
  expect(await screen.findByText(/Open short · BTC\/USDT · 90% confidence/)).toBeTruthy();
});

test('a bot.paused event from the stream updates its status', async () => {
  const { server } = await renderApp({ server: serverWithActivity() });
  Object.assign(server.bots[0]!, { active: false, pausedReason: 'The exchange refused the key.' });
  emit(makeEvent('bot.paused'));
  expect(await screen.findByText('The exchange refused the key.')).toBeTruthy();
  expect(screen.getByTestId('bot-status').props.children).toBe('⏸ Paused');
});

test('a bot.silent event warns that the running bot has stopped completing cycles, and bot.recovered clears it', async () => {
  const { server } = await renderApp({ server: serverWithActivity() });
  Object.assign(server.bots[0]!, { active: true, silentSince: '2026-12-03T15:00:00Z' });
  emit(makeEvent('bot.silent'));
  expect(await screen.findByTestId('bot-silent')).toBeTruthy();
  expect(screen.getByTestId('bot-status').props.children).toBe('⚠ Not running');
  Object.assign(server.bots[0]!, { silentSince: null });
  emit(makeEvent('bot.recovered'));
  await waitFor(() => expect(screen.queryByTestId('bot-silent')).toBeNull());
  expect(screen.getByTestId('bot-status').props.children).toBe('● Running');
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
  expect(screen.getByText(/filled 0.01 at 64000/)).toBeTruthy();
  server.decisions.unshift(makeDecision({ id: 'd3', reasons: ['breakout above resistance'] }));
  server.orders.unshift({ ...server.orders[0]!, id: 'o2', side: 'sell', status: 'open', averagePrice: null });
  emit(makeEvent('decision'));
  emit(makeEvent('order'));
  expect(await screen.findByText('• breakout above resistance')).toBeTruthy();
  expect(screen.getByText(/SELL 0.01 BTC\/USDT · market · open/)).toBeTruthy();
  expect(screen.getAllByTestId('decision')).toHaveLength(2);
});

test("another bot's events do not make this screen re-read anything", async () => {
  const server = serverWithActivity();
  await renderApp({ server });
  fireEvent.press(screen.getByTestId('bot-open-activity'));
  await screen.findByText('• no clear trend');
  const before = server.calls.length;
  emit(makeEvent('decision', 'another-bot'));
  await settle();
  expect(server.calls.length).toBe(before);
});

test('Settings: notification preferences are saved as they are switched', async () => {
  const { server } = await renderApp();
  fireEvent.press(screen.getByTestId('tab-settings'));
  expect(await screen.findByText('A bot was paused (e.g. the exchange refused its key)')).toBeTruthy();
  fireEvent(screen.getByTestId('pref-trade.opened'), 'valueChange', false);
  await waitFor(() => expect(server.preferences).toEqual({ push: { 'bot.paused': true, 'trade.opened': false, 'trade.closed': true } }));
});

test('Settings: enabling push asks for permission and registers the device token with the API', async () => {
  const { server } = await renderApp();
  fireEvent.press(screen.getByTestId('tab-settings'));
  fireEvent.press(await screen.findByTestId('push-enable'));
  expect(await screen.findByText('This device will receive notifications.')).toBeTruthy();
  expect(Notifications.requestPermissionsAsync).toHaveBeenCalled();
  expect(server.devices).toEqual([{ id: 'dev1', platform: 'ios', token: 'apns-device-token', appVersion: expect.any(String) }]);
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

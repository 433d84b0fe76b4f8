import { act, fireEvent, screen, waitFor, within } from '@testing-library/react-native';
import { Alert, type AlertButton } from 'react-native';

import { FakeApi, makePosition } from './fakeApi';
import { renderApp } from './renderApp';

jest.mock('../src/stream/eventStream', () => ({
  openEventStream: (_backend: unknown, _onEvent: unknown, onStatus: (s: string) => void) => {
    onStatus('live');
    return () => undefined;
  },
}));

/** Answer the next confirmation dialog by pressing the button titled `choice`; returns what it asked. */
function answerAlert(choice: string) {
  const asked: { title: string; buttons: string[] }[] = [];
  jest.spyOn(Alert, 'alert').mockImplementationOnce((title: string, _message?: string, buttons?: AlertButton[]) => {
    asked.push({ title, buttons: (buttons ?? []).map((b) => b.text ?? '') });
    act(() => buttons?.find((b) => b.text === choice)?.onPress?.());
  });
  return asked;
}

function serverWithOpenPosition() {
  const server = new FakeApi();
  server.bots[0]!.active = true;
  server.positions = [makePosition({ id: 'p1', symbol: 'BTC/USDT', side: 'long', markPrice: '65250', unrealizedPnl: '12.5' })];
  return server;
}

test('a position is closed from Home after a confirmation, with one idempotency key, and the result shown', async () => {
  const { server } = await renderApp({ server: serverWithOpenPosition() });
  const card = screen.getByTestId('bot-My bot');
  const asked = answerAlert('Close at market');
  fireEvent.press(within(card).getByTestId('position-close'));

  expect(asked[0]).toEqual({ title: 'Close long BTC/USDT now?', buttons: ['Cancel', 'Close at market'] });
  expect(await screen.findByText('Long BTC/USDT closed at 65250 · PnL +12.5')).toBeTruthy();
  const [closeCall] = server.callsTo('POST', '/v1/positions/p1/close');
  expect(closeCall?.idempotencyKey).toMatch(/^[0-9a-f]{32}$/);
  await waitFor(() => expect(within(card).queryAllByTestId('position')).toHaveLength(0));
});

test('cancelling the confirmation closes nothing', async () => {
  const { server } = await renderApp({ server: serverWithOpenPosition() });
  answerAlert('Cancel');
  fireEvent.press(screen.getByTestId('position-close'));
  expect(server.callsTo('POST', '/v1/positions/p1/close')).toHaveLength(0);
  expect(screen.getAllByTestId('position')).toHaveLength(1);
});

test('an answer lost on the way is asked again with the same key, so the server does it once', async () => {
  const { server } = await renderApp({ server: serverWithOpenPosition() });
  server.overrides.set('POST /v1/positions/p1/close', () => {
    throw new TypeError('Network request failed');
  });
  answerAlert('Close at market');
  fireEvent.press(screen.getByTestId('position-close'));
  expect(await screen.findByText(/closed at 65250/)).toBeTruthy();
  const calls = server.callsTo('POST', '/v1/positions/p1/close');
  expect(calls).toHaveLength(2);
  expect(calls[0]!.idempotencyKey).toBe(calls[1]!.idempotencyKey);
});

test('Close all on a bot offers to keep it running or stop it, and stopping shows it stopped', async () => {
  const { server } = await renderApp({ server: serverWithOpenPosition() });
  const asked = answerAlert('Close all and stop');
  fireEvent.press(screen.getByTestId('bot-close-all'));
  expect(asked[0]!.buttons).toEqual(['Cancel', 'Close all, keep running', 'Close all and stop']);
  expect(await screen.findByText(/closed at 65250/)).toBeTruthy();
  expect(server.callsTo('POST', `/v1/bots/${server.bots[0]!.id}/close`)[0]?.body).toEqual({ stopBot: true });
  await waitFor(() => expect(screen.getByTestId('bot-status').props.children).toBe('○ Stopped'));
});

test('Settings: closing everything needs the password, then stops every bot and closes every position', async () => {
  const { server } = await renderApp({ server: serverWithOpenPosition() });
  fireEvent.press(screen.getByTestId('tab-settings'));
  const panic = await screen.findByTestId('panic');
  expect(within(panic).getByTestId('panic-close-all').props.accessibilityState.disabled).toBe(true);

  fireEvent.changeText(within(panic).getByTestId('field-panicPassword'), 'not my password');
  answerAlert('Close everything');
  fireEvent.press(within(panic).getByTestId('panic-close-all'));
  expect(await within(panic).findByText(/the password is wrong/)).toBeTruthy();
  expect(server.positions[0]!.status).toBe('open');

  fireEvent.changeText(within(panic).getByTestId('field-panicPassword'), server.password);
  answerAlert('Close everything');
  fireEvent.press(within(panic).getByTestId('panic-close-all'));
  expect(await within(panic).findByText(/Every bot is stopped\. Long BTC\/USDT closed at 65250/)).toBeTruthy();
  expect(server.positions[0]!.status).toBe('closed');
  expect(server.bots[0]!.active).toBe(false);
});

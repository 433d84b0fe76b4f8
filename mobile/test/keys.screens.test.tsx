import { fireEvent, screen, waitFor, within } from '@testing-library/react-native';

import { problem } from './fakeApi';
import { renderApp } from './renderApp';
import { settle } from './settle';

jest.mock('../src/stream/eventStream', () => ({ openEventStream: () => () => {} }));

async function openKeys() {
  const ctx = await renderApp();
  fireEvent.press(screen.getByTestId('tab-keys'));
  await screen.findByTestId('screen-exchange-keys');
  await settle();
  return ctx;
}

test('the screen tells the user to disable withdrawals and set an IP whitelist before linking', async () => {
  await openKeys();
  const guidance = screen.getByTestId('key-guidance');
  expect(within(guidance).getByText(/disable withdrawals/)).toBeTruthy();
  expect(within(guidance).getByText(/IP whitelist/)).toBeTruthy();
});

test('a paper key needs only a label and then appears in the list', async () => {
  const { server } = await openKeys();
  fireEvent.press(screen.getByTestId('exchange-paper'));
  expect(screen.queryByTestId('field-apiKey')).toBeNull();
  fireEvent.changeText(screen.getByTestId('field-label'), 'Practice');
  fireEvent.press(screen.getByTestId('link-submit'));
  expect(await screen.findByTestId('key-Practice')).toBeTruthy();
  expect(server.callsTo('POST', '/v1/exchange-keys')[0]!.body).toEqual({ exchange: 'paper', label: 'Practice', testnet: false });
});

test('a real exchange key is listed masked, with a warning when it has no IP whitelist', async () => {
  await openKeys();
  fireEvent.press(screen.getByTestId('exchange-bybit'));
  fireEvent.changeText(screen.getByTestId('field-label'), 'Main');
  fireEvent.changeText(screen.getByTestId('field-apiKey'), 'AKIA-1234-WXYZ');
  fireEvent.changeText(screen.getByTestId('field-secret'), 's3cret');
  fireEvent.press(screen.getByTestId('link-submit'));
  const row = await screen.findByTestId('key-Main');
  expect(within(row).getByText('API key ••••WXYZ')).toBeTruthy();
  expect(within(row).queryByText(/AKIA/)).toBeNull();
  expect(within(row).getByText(/No IP whitelist/)).toBeTruthy();
});

test('a real exchange without key and secret is refused before sending', async () => {
  const { server } = await openKeys();
  fireEvent.press(screen.getByTestId('exchange-binance'));
  fireEvent.changeText(screen.getByTestId('field-label'), 'Main');
  fireEvent.press(screen.getByTestId('link-submit'));
  expect((await screen.findByTestId('error-apiKey')).props.children).toBe('required for a real exchange');
  expect(screen.getByTestId('error-secret')).toBeTruthy();
  expect(server.callsTo('POST', '/v1/exchange-keys')).toHaveLength(0);
});

test("the exchange's refusal is shown next to the API key field", async () => {
  const { server } = await openKeys();
  server.overrides.set('POST /v1/exchange-keys', () =>
    problem(422, 'apiKey: withdrawal permission must be disabled', [{ field: 'apiKey', message: 'withdrawal permission must be disabled' }]),
  );
  fireEvent.press(screen.getByTestId('exchange-bybit'));
  fireEvent.changeText(screen.getByTestId('field-label'), 'Main');
  fireEvent.changeText(screen.getByTestId('field-apiKey'), 'key');
  fireEvent.changeText(screen.getByTestId('field-secret'), 'secret');
  fireEvent.press(screen.getByTestId('link-submit'));
  expect((await screen.findByTestId('error-apiKey')).props.children).toBe('withdrawal permission must be disabled');
});

test('deleting a key asks first; cancel keeps it, confirm removes it', async () => {
  const { server } = await openKeys();
  fireEvent.changeText(screen.getByTestId('field-label'), 'Practice');
  fireEvent.press(screen.getByTestId('link-submit'));
  await screen.findByTestId('key-Practice');

  fireEvent.press(screen.getByTestId('delete-Practice'));
  expect(screen.getByText(/Delete “Practice”\?/)).toBeTruthy();
  fireEvent.press(screen.getByTestId('delete-cancel'));
  expect(server.calls.filter((c) => c.method === 'DELETE')).toHaveLength(0);

  fireEvent.press(screen.getByTestId('delete-Practice'));
  fireEvent.press(screen.getByTestId('delete-confirm'));
  await waitFor(() => expect(screen.queryByTestId('key-Practice')).toBeNull());
  expect(server.keys).toEqual([]);
});

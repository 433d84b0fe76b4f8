import { act } from '@testing-library/react-native';

/** Let pending fetches resolve and their state updates render. */
export async function settle(ms = 20): Promise<void> {
  await act(async () => {
    await new Promise((resolve) => setTimeout(resolve, ms));
  });
}

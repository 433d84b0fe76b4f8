import { useCallback, useState } from 'react';

import { ApiError, describeError } from '../api/problem';

/**
 * A form's banner and per-field messages from whatever a submit threw: the server's problem-details
 * field errors go next to their fields, everything else (offline, 429, 5xx) to the banner.
 */
export function useFormErrors<F extends string>() {
  const [fieldErrors, setFieldErrors] = useState<Partial<Record<F, string>>>({});
  const [banner, setBanner] = useState<string | null>(null);

  const showError = useCallback((error: unknown) => {
    if (error instanceof ApiError && Object.keys(error.fieldErrors).length) {
      const { '': whole, ...byField } = error.fieldErrors;
      setFieldErrors(byField as Partial<Record<F, string>>);
      setBanner(whole ?? error.message);
    } else {
      setFieldErrors({});
      setBanner(describeError(error));
    }
  }, []);

  const clear = useCallback(() => {
    setFieldErrors({});
    setBanner(null);
  }, []);

  return { fieldErrors, setFieldErrors, banner, setBanner, showError, clear };
}

import type { NativeStackScreenProps } from '@react-navigation/native-stack';
import { useState } from 'react';

import { useBackend } from '../api/BackendContext';
import { call } from '../api/client';
import { Banner, Button, Field, Page, SecretField, Title } from '../components/ui';
import { useFormErrors } from '../components/useFormErrors';
import type { AuthStackParams } from '../navigation/types';

type Props = NativeStackScreenProps<AuthStackParams, 'Register'>;
type RegisterField = 'email' | 'password' | 'tenantName';

// The server's RegisterRequest limits (openapi.json); test/authLimits.test.ts keeps them equal.
export const REGISTER_LIMITS = {
  email: { minLength: 3, maxLength: 320 },
  password: { minLength: 10, maxLength: 256 },
  tenantName: { minLength: 1, maxLength: 120 },
} as const;

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

export function validateRegistration(email: string, password: string, tenantName: string): Partial<Record<RegisterField, string>> {
  const errors: Partial<Record<RegisterField, string>> = {};
  const address = email.trim();
  if (!EMAIL.test(address) || address.length > REGISTER_LIMITS.email.maxLength) errors.email = 'must be an email address';
  if (password.length < REGISTER_LIMITS.password.minLength) errors.password = `at least ${REGISTER_LIMITS.password.minLength} characters`;
  else if (password.length > REGISTER_LIMITS.password.maxLength) errors.password = `at most ${REGISTER_LIMITS.password.maxLength} characters`;
  if (tenantName.length > REGISTER_LIMITS.tenantName.maxLength) errors.tenantName = `at most ${REGISTER_LIMITS.tenantName.maxLength} characters`;
  return errors;
}

export function RegisterScreen({ navigation }: Props) {
  const { api, session } = useBackend();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [tenantName, setTenantName] = useState('');
  const [busy, setBusy] = useState(false);
  const { fieldErrors, setFieldErrors, banner, showError, clear } = useFormErrors<RegisterField>();

  const submit = async () => {
    clear();
    const invalid = validateRegistration(email, password, tenantName);
    if (Object.keys(invalid).length) return setFieldErrors(invalid);
    setBusy(true);
    try {
      const body = { email: email.trim(), password, tenantName: tenantName.trim() || null };
      const tokens = await call(api.POST('/v1/auth/register', { body }));
      await session.signIn(tokens);
    } catch (error) {
      showError(error);
      setBusy(false);
    }
  };

  return (
    <Page testID="screen-register">
      <Title>Create your account</Title>
      <Banner message={banner} />
      <Field name="email" label="Email" value={email} onChangeText={setEmail} autoCapitalize="none" keyboardType="email-address" autoComplete="email" error={fieldErrors.email} />
      <SecretField
        name="password"
        label="Password"
        value={password}
        onChangeText={setPassword}
        autoComplete="new-password"
        hint={`${REGISTER_LIMITS.password.minLength} to ${REGISTER_LIMITS.password.maxLength} characters`}
        error={fieldErrors.password}
      />
      <Field name="tenantName" label="Account name (optional)" value={tenantName} onChangeText={setTenantName} error={fieldErrors.tenantName} />
      <Button title="Create account" onPress={submit} busy={busy} testID="register-submit" />
      <Button title="I already have an account" kind="secondary" onPress={() => navigation.navigate('Login')} testID="go-login" />
    </Page>
  );
}

import type { NativeStackScreenProps } from '@react-navigation/native-stack';
import { useState } from 'react';

import { useBackend } from '../api/BackendContext';
import { call } from '../api/client';
import { Banner, Button, Field, Muted, Page, SecretField, Title } from '../components/ui';
import { useFormErrors } from '../components/useFormErrors';
import type { AuthStackParams } from '../navigation/types';

type Props = NativeStackScreenProps<AuthStackParams, 'Login'>;

export function LoginScreen({ navigation }: Props) {
  const { api, session } = useBackend();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const { fieldErrors, setFieldErrors, banner, showError, clear } = useFormErrors<'email' | 'password'>();

  const submit = async () => {
    clear();
    const missing: typeof fieldErrors = {};
    if (!email.trim()) missing.email = 'enter your email';
    if (!password) missing.password = 'enter your password';
    if (Object.keys(missing).length) return setFieldErrors(missing);
    setBusy(true);
    try {
      const tokens = await call(api.POST('/v1/auth/login', { body: { email: email.trim(), password } }));
      await session.signIn(tokens);
    } catch (error) {
      showError(error);
      setBusy(false);
    }
  };

  return (
    <Page testID="screen-login">
      <Title>Sign in to Quorum</Title>
      <Banner message={banner} />
      <Field
        name="email"
        label="Email"
        value={email}
        onChangeText={setEmail}
        autoCapitalize="none"
        autoComplete="email"
        keyboardType="email-address"
        error={fieldErrors.email}
      />
      <SecretField
        name="password"
        label="Password"
        value={password}
        onChangeText={setPassword}
        autoComplete="password"
        onSubmitEditing={submit}
        error={fieldErrors.password}
      />
      <Button title="Sign in" onPress={submit} busy={busy} testID="login-submit" />
      <Muted>No account yet?</Muted>
      <Button title="Create an account" kind="secondary" onPress={() => navigation.navigate('Register')} testID="go-register" />
    </Page>
  );
}

import { NavigationContainer } from '@react-navigation/native';
import { StatusBar } from 'expo-status-bar';
import { useEffect, useRef, useState } from 'react';
import { View } from 'react-native';

import { BackendProvider } from './src/api/BackendContext';
import { createBackend, type Backend } from './src/api/client';
import { apiBaseUrl } from './src/api/config';
import { describeError } from './src/api/problem';
import { secureTokenStore } from './src/auth/tokenStore';
import { Banner, Loading } from './src/components/ui';
import { RootNavigator, navigationRef } from './src/navigation/RootNavigator';
import { onNotificationTap } from './src/push/push';

export default function App({ backend: given }: { backend?: Backend }) {
  const [backend] = useState(() => given ?? createBackend({ baseUrl: apiBaseUrl(), store: secureTokenStore }));
  const [restoring, setRestoring] = useState(true);
  const [startupError, setStartupError] = useState<string | null>(null);
  const pendingBot = useRef<string | null>(null);

  useEffect(() => {
    backend.session
      .restore()
      .catch((error) => setStartupError(describeError(error)))
      .finally(() => setRestoring(false));
  }, [backend]);

  useEffect(() => {
    const openBot = () => {
      const botId = pendingBot.current;
      if (botId && backend.session.signedIn && navigationRef.isReady()) {
        pendingBot.current = null;
        navigationRef.navigate('Activity', { botId });
      }
    };
    const stopTaps = onNotificationTap((botId) => {
      pendingBot.current = botId; // kept until the user is signed in, if they are not yet
      openBot();
    });
    const stopSession = backend.session.subscribe((signedIn) => signedIn && setTimeout(openBot, 0));
    return () => {
      stopTaps();
      stopSession();
    };
  }, [backend]);

  return (
    <BackendProvider backend={backend}>
      <StatusBar style="dark" />
      {restoring ? (
        <Loading />
      ) : (
        <View style={{ flex: 1 }}>
          <Banner message={startupError} testID="startup-error" />
          <NavigationContainer ref={navigationRef} onReady={() => pendingBot.current && backend.session.signedIn && navigationRef.navigate('Activity', { botId: pendingBot.current })}>
            <RootNavigator />
          </NavigationContainer>
        </View>
      )}
    </BackendProvider>
  );
}

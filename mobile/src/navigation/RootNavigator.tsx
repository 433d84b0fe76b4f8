import { createBottomTabNavigator } from '@react-navigation/bottom-tabs';
import { createNavigationContainerRef } from '@react-navigation/native';
import { createNativeStackNavigator } from '@react-navigation/native-stack';

import { useSignedIn } from '../api/BackendContext';
import { ActivityScreen } from '../screens/ActivityScreen';
import { BotConfigScreen } from '../screens/BotConfigScreen';
import { ExchangeKeysScreen } from '../screens/ExchangeKeysScreen';
import { HomeScreen } from '../screens/HomeScreen';
import { LoginScreen } from '../screens/LoginScreen';
import { RegisterScreen } from '../screens/RegisterScreen';
import { SettingsScreen } from '../screens/SettingsScreen';
import { StreamProvider } from '../stream/StreamContext';
import type { AuthStackParams, TabParams } from './types';

export const navigationRef = createNavigationContainerRef<TabParams>();

const AuthStack = createNativeStackNavigator<AuthStackParams>();
const Tabs = createBottomTabNavigator<TabParams>();

const tabIcon = () => null;

function SignedInTabs() {
  return (
    <StreamProvider>
      <Tabs.Navigator screenOptions={{ tabBarIcon: tabIcon, tabBarLabelStyle: { fontSize: 13 }, tabBarIconStyle: { display: 'none' } }}>
        <Tabs.Screen name="Home" component={HomeScreen} options={{ title: 'Home', tabBarButtonTestID: 'tab-home' }} />
        <Tabs.Screen name="Activity" component={ActivityScreen} options={{ title: 'Activity', tabBarButtonTestID: 'tab-activity' }} />
        <Tabs.Screen name="BotConfig" component={BotConfigScreen} options={{ title: 'Bot', tabBarButtonTestID: 'tab-bot' }} />
        <Tabs.Screen name="ExchangeKeys" component={ExchangeKeysScreen} options={{ title: 'Keys', tabBarButtonTestID: 'tab-keys' }} />
        <Tabs.Screen name="Settings" component={SettingsScreen} options={{ title: 'Settings', tabBarButtonTestID: 'tab-settings' }} />
      </Tabs.Navigator>
    </StreamProvider>
  );
}

function SignedOutStack() {
  return (
    <AuthStack.Navigator>
      <AuthStack.Screen name="Login" component={LoginScreen} options={{ title: 'Sign in' }} />
      <AuthStack.Screen name="Register" component={RegisterScreen} options={{ title: 'Register' }} />
    </AuthStack.Navigator>
  );
}

export function RootNavigator() {
  return useSignedIn() ? <SignedInTabs /> : <SignedOutStack />;
}

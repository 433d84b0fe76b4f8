export type AuthStackParams = {
  Login: undefined;
  Register: undefined;
};

export type TabParams = {
  Home: undefined;
  Activity: { botId?: string } | undefined;
  BotConfig: undefined;
  ExchangeKeys: undefined;
  Settings: undefined;
};

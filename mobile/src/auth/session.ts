/**
 * The signed-in session: the access token only in memory, the refresh token in a TokenStore, and one
 * refresh at a time however many requests meet a 401 together (the server rotates refresh tokens, and
 * presenting a used one revokes the whole session).
 */
export interface TokenStore {
  load(): Promise<string | null>;
  save(token: string): Promise<void>;
  clear(): Promise<void>;
}

export interface TokenPair {
  accessToken: string;
  refreshToken: string;
}

/** Exchanges a refresh token: new tokens, 'rejected' when the server refuses it; throws when unreachable. */
export type RefreshTokens = (refreshToken: string) => Promise<TokenPair | 'rejected'>;

type Listener = (signedIn: boolean) => void;

export class Session {
  private access: string | null = null;
  private inFlight: Promise<boolean> | null = null;
  private readonly listeners = new Set<Listener>();

  constructor(
    private readonly store: TokenStore,
    private readonly exchange: RefreshTokens,
  ) {}

  get accessToken(): string | null {
    return this.access;
  }

  get signedIn(): boolean {
    return this.access !== null;
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async signIn(tokens: TokenPair): Promise<void> {
    this.access = tokens.accessToken;
    await this.store.save(tokens.refreshToken);
    this.emit();
  }

  /** Forget both tokens (the caller tells the server first, when it can). */
  async signOut(): Promise<void> {
    const wasSignedIn = this.access !== null;
    this.access = null;
    await this.store.clear();
    if (wasSignedIn) this.emit();
  }

  /** At start-up: sign in again from a stored refresh token, if there is one. */
  async restore(): Promise<boolean> {
    return (await this.store.load()) ? this.refresh() : false;
  }

  /** Single-flight: concurrent callers share one request to /v1/auth/refresh. */
  refresh(): Promise<boolean> {
    this.inFlight ??= this.rotate().finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  private async rotate(): Promise<boolean> {
    const refreshToken = await this.store.load();
    if (!refreshToken) {
      await this.signOut();
      return false;
    }
    const result = await this.exchange(refreshToken);
    if (result === 'rejected') {
      await this.signOut();
      return false;
    }
    const wasSignedIn = this.access !== null;
    this.access = result.accessToken;
    await this.store.save(result.refreshToken);
    if (!wasSignedIn) this.emit();
    return true;
  }

  private emit(): void {
    for (const listener of this.listeners) listener(this.signedIn);
  }
}

/**
 * The one HTTP path to the API: an openapi-fetch client typed from openapi.json, whose fetch adds the
 * in-memory access token and, on a 401, refreshes once (shared by every request that met it) and retries.
 */
import createClient, { type Client } from 'openapi-fetch';

import { Session, type TokenStore } from '../auth/session';
import { ApiError, OfflineError, isProblem } from './problem';
import type { paths } from './schema';

export type ApiPaths = paths;
export type Api = Client<ApiPaths>;
export type Fetch = (request: Request) => Promise<Response>;

export interface Backend {
  api: Api;
  session: Session;
  baseUrl: string;
}

export function createBackend(options: { baseUrl: string; store: TokenStore; fetch?: Fetch }): Backend {
  const send: Fetch = options.fetch ?? ((request) => globalThis.fetch(request));
  const publicApi = createClient<paths>({ baseUrl: options.baseUrl, fetch: send });

  const session = new Session(options.store, async (refreshToken) => {
    const { data, response } = await publicApi.POST('/v1/auth/refresh', { body: { refreshToken } });
    if (data) return { accessToken: data.accessToken, refreshToken: data.refreshToken };
    // A busy or broken server has not judged the token: keep it and let the caller retry later.
    if (response.status === 429 || response.status >= 500) throw new ApiError(response.status, null);
    return 'rejected';
  });

  const withToken = (request: Request, token: string | null): Request => {
    if (token) request.headers.set('Authorization', `Bearer ${token}`);
    return request;
  };

  const authorizedFetch: Fetch = async (request) => {
    const replay = request.clone(); // the body can be read once; keep a copy for the retry
    const token = session.accessToken;
    const response = await send(withToken(request, token));
    if (response.status !== 401 || !token || isAuthRoute(request.url)) return response;
    // Another request may have refreshed while this one was in flight; only refresh if not.
    const refreshed = session.accessToken !== token || (await session.refresh());
    return refreshed ? send(withToken(replay, session.accessToken)) : response;
  };

  const api = createClient<ApiPaths>({ baseUrl: options.baseUrl, fetch: authorizedFetch });
  return { api, session, baseUrl: options.baseUrl };
}

function isAuthRoute(url: string): boolean {
  return /\/v1\/auth\/(login|register|refresh)$/.test(new URL(url).pathname);
}

type Outcome<D> = { data?: D; error?: unknown; response: Response };

/**
 * The data of a successful call; otherwise throws ApiError (the server's problem details) or
 * OfflineError (no answer at all), which the screens turn into messages.
 */
export async function call<D>(pending: Promise<Outcome<D>>): Promise<D> {
  let outcome: Outcome<D>;
  try {
    outcome = await pending;
  } catch (error) {
    if (error instanceof ApiError) throw error;
    throw new OfflineError(error);
  }
  if (!outcome.response.ok) {
    throw new ApiError(outcome.response.status, isProblem(outcome.error) ? outcome.error : null);
  }
  return outcome.data as D;
}

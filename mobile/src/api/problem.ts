/** How the app reads the server's RFC 9457 problem details and tells the user what went wrong. */
import type { components } from './schema';

export type Problem = components['schemas']['Problem'];

export const OFFLINE_MESSAGE = "Can't reach Quorum. Check your connection and try again.";

/** The server answered with an error; `fieldErrors` maps a form field to the server's message about it. */
export class ApiError extends Error {
  readonly status: number;
  readonly problem: Problem | null;
  readonly fieldErrors: Record<string, string>;

  constructor(status: number, problem: Problem | null) {
    super(messageFor(status, problem));
    this.name = 'ApiError';
    this.status = status;
    this.problem = problem;
    this.fieldErrors = fieldErrorsOf(problem);
  }
}

/** The request never got an answer: no network, DNS failure, server down. */
export class OfflineError extends Error {
  constructor(cause?: unknown) {
    super(OFFLINE_MESSAGE);
    this.name = 'OfflineError';
    this.cause = cause;
  }
}

export function isProblem(value: unknown): value is Problem {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Problem).status === 'number' &&
    typeof (value as Problem).title === 'string'
  );
}

/**
 * Field errors keyed by the top-level form field: the server names nested fields as paths
 * (`symbols[1]`, `agentWeights.gann`), which the forms show next to the field they belong to.
 */
export function fieldErrorsOf(problem: Problem | null): Record<string, string> {
  const out: Record<string, string> = {};
  for (const { field, message } of problem?.errors ?? []) {
    const key = field.split(/[.[]/)[0] || '';
    const rest = field
      .slice(key.length)
      .replace(/^\[(\d+)\]/, (_, index: string) => `item ${Number(index) + 1}`)
      .replace(/^\./, '');
    const text = rest ? `${rest}: ${message}` : message;
    out[key] = out[key] ? `${out[key]}; ${text}` : text;
  }
  return out;
}

function messageFor(status: number, problem: Problem | null): string {
  if (status === 429) return 'Too many attempts. Wait a moment and try again.';
  if (status >= 500) return 'Quorum could not complete the request. Try again shortly.';
  if (problem?.errors?.length) return 'Please correct the highlighted fields.';
  return problem?.detail || problem?.title || `The request failed (HTTP ${status}).`;
}

/** One sentence for any error the app can meet, for banners and alerts. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError || error instanceof OfflineError) return error.message;
  return 'Something went wrong. Try again.';
}

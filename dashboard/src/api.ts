// The dashboard API, as the gateway documents it (/docs). Everything that comes back is
// checked before use; a refusal becomes an ApiError that carries the API's own words.

export type Status =
  | "new"
  | "open"
  | "in_progress"
  | "waiting_on_customer"
  | "resolved"
  | "closed"
  | "spam";
export type Priority = "critical" | "high" | "normal" | "low";
export type Role = "owner" | "admin" | "member" | "guest";

export const STATUSES: readonly Status[] = [
  "new",
  "open",
  "in_progress",
  "waiting_on_customer",
  "resolved",
  "closed",
  "spam",
];
export const HIDDEN_BY_DEFAULT: readonly Status[] = ["closed", "spam"];
export const PRIORITIES: readonly Priority[] = ["critical", "high", "normal", "low"];
export const ROLES: readonly Role[] = ["owner", "admin", "member", "guest"];

export const STATUS_LABELS: Record<Status, string> = {
  new: "New",
  open: "Open",
  in_progress: "In progress",
  waiting_on_customer: "Waiting on customer",
  resolved: "Resolved",
  closed: "Closed",
  spam: "Spam",
};
export const PRIORITY_LABELS: Record<Priority, string> = {
  critical: "Critical",
  high: "High",
  normal: "Normal",
  low: "Low",
};

export interface Ticket {
  id: string;
  number: number;
  subject: string;
  description: string;
  status: Status;
  priority: Priority;
  assignee_id: string | null;
  conversation_ids: string[];
  version: number;
  created_at: string;
  updated_at: string;
}

export interface TicketPage {
  items: Ticket[];
  next_cursor: string | null;
  hidden_matches: Partial<Record<Status, number>>;
}

export interface TicketCounts {
  counts: Partial<Record<Status, number>>;
  total: number;
}

export interface Member {
  id: string;
  workspace_id: string;
  email: string;
  role: Role;
  created_at: string;
  capabilities: string[];
}

export interface Actor {
  type: string;
  id?: string | null;
}

export interface ActivityEntry {
  sequence: number;
  type: string;
  actor: Actor;
  time: string;
  changes: Record<string, { from?: unknown; to?: unknown } | unknown>;
}

export interface ConversationMessage {
  role: string;
  text: string;
  sent_at?: string;
}

/** One line of `GET /api/v1/assistants`: an assistant the workspace configured. */
export interface AssistantSummary {
  assistant_id: string;
  ticket_creation_enabled: boolean;
  require_contact_info: boolean;
  identity_verification: boolean;
  allowed_origins: string[];
}

export interface TicketSettings {
  ticket_creation_enabled: boolean;
  require_contact_info: boolean;
  allowed_origins?: string[];
  identity_verification?: boolean;
  widget_key?: string;
}

/** A refusal of the API (problem+json), or a failure to reach it, in words. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | null;
  readonly body: Record<string, unknown>;

  constructor(status: number, code: string, detail: string, field: string | null, body: Record<string, unknown>) {
    super(detail);
    this.status = status;
    this.code = code;
    this.field = field;
    this.body = body;
  }
}

const TOKEN_KEY = "helpdesk.token";

export function storedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function storeToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** Takes a `#token=...` sign-in link's token into session storage and off the address bar. */
export function takeTokenFromAddress(): void {
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  const token = fragment.get("token");
  if (token === null) return;
  if (/^[A-Za-z0-9_\-.]{10,4000}$/.test(token)) storeToken(token);
  history.replaceState(null, "", window.location.pathname + window.location.search);
}

export interface TokenClaims {
  sub: string;
  workspace_id: string;
}

/** What the token says about who holds it; the gateway verifies it, this only reads it. */
export function readClaims(token: string): TokenClaims | null {
  const part = token.split(".")[1];
  if (part === undefined) return null;
  try {
    const json: unknown = JSON.parse(atob(part.replace(/-/g, "+").replace(/_/g, "/")));
    if (typeof json !== "object" || json === null) return null;
    const { sub, workspace_id } = json as Record<string, unknown>;
    if (typeof sub !== "string" || typeof workspace_id !== "string") return null;
    return { sub, workspace_id };
  } catch {
    return null;
  }
}

function fieldOf(body: Record<string, unknown>): string | null {
  // FastAPI-style validation errors carry `errors: [{loc: ["body", "subject"], ...}]`.
  for (const key of ["errors", "invalid_params"]) {
    const list = body[key];
    if (Array.isArray(list) && list.length > 0) {
      const first: unknown = list[0];
      if (typeof first === "object" && first !== null) {
        const record = first as Record<string, unknown>;
        const loc = record["loc"];
        if (Array.isArray(loc)) {
          const last: unknown = loc[loc.length - 1];
          if (typeof last === "string") return last;
        }
        const name = record["name"] ?? record["field"];
        if (typeof name === "string") return name;
      }
    }
  }
  const field = body["field"];
  return typeof field === "string" ? field : null;
}

export interface Answer<T> {
  data: T;
  etag: string | null;
}

export async function call<T>(
  method: string,
  path: string,
  options: { body?: unknown; headers?: Record<string, string> } = {},
): Promise<Answer<T>> {
  const headers: Record<string, string> = { Accept: "application/json", ...options.headers };
  const token = storedToken();
  if (token !== null) headers["Authorization"] = `Bearer ${token}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.body);
  }
  let response: Response;
  try {
    response = await fetch(path, body === undefined ? { method, headers } : { method, headers, body });
  } catch {
    throw new ApiError(0, "unreachable", "The help desk could not be reached. Check your connection and try again.", null, {});
  }
  if (response.ok) {
    const data = response.status === 204 ? null : ((await response.json()) as unknown);
    return { data: data as T, etag: response.headers.get("ETag") };
  }
  let problem: Record<string, unknown> = {};
  try {
    const parsed: unknown = await response.json();
    if (typeof parsed === "object" && parsed !== null) problem = parsed as Record<string, unknown>;
  } catch {
    // not JSON: the status line speaks for it
  }
  const detail =
    typeof problem["detail"] === "string"
      ? problem["detail"]
      : typeof problem["title"] === "string"
        ? problem["title"]
        : `The request failed (HTTP ${response.status}).`;
  const code = typeof problem["code"] === "string" ? problem["code"] : `http_${response.status}`;
  const error = new ApiError(response.status, code, detail, fieldOf(problem), problem);
  if (response.status === 401) window.dispatchEvent(new CustomEvent("helpdesk:signed-out", { detail: error.message }));
  throw error;
}

export function errorText(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  return "Something went wrong in the page; reload it to try again.";
}

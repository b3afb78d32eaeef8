// The REST client: every request carries the signed-in token as a bearer
// header; a 401 anywhere ends the session and returns to the sign-in.

const TOKEN_KEY = "cctv.token";

export class Unauthorized extends Error {
  constructor() {
    super("the API token was refused");
  }
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(describeDetail(status, detail));
    this.status = status;
    this.detail = detail;
  }
}

export const token = () => sessionStorage.getItem(TOKEN_KEY);
export const setToken = (value) => sessionStorage.setItem(TOKEN_KEY, value);
export const clearToken = () => sessionStorage.removeItem(TOKEN_KEY);

let unauthorizedHandler = () => {};
export function whenUnauthorized(handler) {
  unauthorizedHandler = handler;
}

function url(path, query) {
  const target = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value === undefined || value === null || value === "") continue;
    for (const item of Array.isArray(value) ? value : [value]) {
      target.searchParams.append(key, item instanceof Date ? item.toISOString() : String(item));
    }
  }
  return target;
}

export async function api(path, { method = "GET", query, body, signal, bearer } = {}) {
  const headers = { Authorization: `Bearer ${bearer ?? token() ?? ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url(path, query), {
    method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    if (bearer === undefined) unauthorizedHandler();
    throw new Unauthorized();
  }
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail ?? detail;
    } catch {
      // not JSON: keep the status text
    }
    throw new ApiError(response.status, detail);
  }
  return response.status === 204 ? null : response.json();
}

// Every item of a list endpoint, a thousand at a time (the API's maximum).
export async function allItems(path, query = {}, { signal, max = 20000, onPage } = {}) {
  const items = [];
  for (let offset = 0; offset < max; offset += 1000) {
    const page = await api(path, { query: { ...query, limit: 1000, offset }, signal });
    items.push(...page.items);
    onPage?.(items.length, page.total);
    if (page.items.length < 1000 || items.length >= page.total) break;
  }
  return items;
}

// Is this token one the service accepts? (Used by the sign-in form.)
export async function tokenAccepted(candidate) {
  try {
    await api("/api/nodes", { query: { limit: 1 }, bearer: candidate });
    return true;
  } catch (error) {
    if (error instanceof Unauthorized) return false;
    throw error;
  }
}

// EventSource and <video> cannot send a header: these routes take ?token=.
export const streamUrl = () => url("/api/stream", { token: token() }).toString();
export const mediaUrl = (segmentId) =>
  url(`/api/segments/${encodeURIComponent(segmentId)}/media`, { token: token() }).toString();

function describeDetail(status, detail) {
  if (Array.isArray(detail)) {
    // FastAPI/pydantic validation errors: "field: message" each.
    return detail.map((e) => {
      const where = (e.loc ?? []).filter((p) => p !== "body" && typeof p === "string").join(".");
      return where ? `${where}: ${e.msg}` : e.msg;
    }).join("; ");
  }
  if (detail && typeof detail === "object") return detail.error ?? JSON.stringify(detail);
  return detail ? String(detail) : `HTTP ${status}`;
}

export function errorText(error) {
  if (error instanceof ApiError || error instanceof Unauthorized) return error.message;
  if (error?.name === "AbortError") return "cancelled";
  return `the service could not be reached (${error?.message ?? error})`;
}

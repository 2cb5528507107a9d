// The host's JSON API as the page uses it. Errors come back as `ApiError`
// with the host's own message (its JSON `error`/`message`). A 401 asks for
// the admin token (kept in sessionStorage, so it lives as long as the tab)
// and retries with it: the page holds no credential the user did not type.

const TOKEN_KEY = 'event-host.admin-token';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * Sends a request; resolves to the JSON answer (null when there is none).
 * `body` is sent as is (a File for uploads) with `contentType`.
 */
export async function api(method, path, { body, contentType } = {}) {
  let problem = '';
  for (;;) {
    const headers = {};
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = `Bearer ${token}`;
    if (contentType) headers['Content-Type'] = contentType;
    let response;
    try {
      response = await fetch(path, { method, headers, body, cache: 'no-store' });
    } catch (e) {
      throw new ApiError(0, 'unreachable', `the host did not answer ${method} ${path}: ${e.message}`);
    }
    const data = await readJson(response);
    if (response.status === 401) {
      if (token) problem = 'The host refused that token; check ADMIN_TOKEN and try again.';
      const given = await askForToken(problem);
      if (given === null) {
        if (token) sessionStorage.removeItem(TOKEN_KEY);
        throw new ApiError(401, 'unauthorized', `${method} ${path} needs the admin token, and none was given`);
      }
      sessionStorage.setItem(TOKEN_KEY, given);
      continue;
    }
    if (!response.ok) {
      const message = data?.message ?? data?.error ?? `${response.status} ${response.statusText}`;
      throw new ApiError(response.status, data?.error ?? `http_${response.status}`, `${method} ${path}: ${message}`);
    }
    return data;
  }
}

async function readJson(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { error: 'not_json', message: text.slice(0, 500) };
  }
}

// One prompt at a time: requests refused together wait for the same answer.
let pending = null;

/** Shows the token form; resolves to the token, or null when cancelled. */
function askForToken(problem) {
  if (pending) return pending;
  const dialog = document.getElementById('token-dialog');
  const form = document.getElementById('token-form');
  const input = form.elements.token;
  const note = document.getElementById('token-problem');
  note.textContent = problem;
  note.hidden = !problem;
  input.value = '';
  pending = new Promise((resolve) => {
    dialog.addEventListener(
      'close',
      () => {
        pending = null;
        const token = input.value.trim();
        input.value = '';
        resolve(dialog.returnValue === 'ok' && token ? token : null);
      },
      { once: true },
    );
  });
  dialog.returnValue = '';
  dialog.showModal();
  input.focus();
  return pending;
}

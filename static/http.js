// JSON requests to this server, shared by the pages that talk to its API.
//
// request() never throws: it resolves to {status, data}, where data is the
// JSON body, or {error} when the server could not be reached (status 0) or
// answered without JSON, so a page has one shape of failure to show.

// Django's CSRF token: the form field a template rendered, else the cookie.
export function csrfToken() {
  const input = document.querySelector("[name=csrfmiddlewaretoken]");
  if (input) return input.value;
  const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

export async function request(url, options = {}) {
  let resp;
  try {
    resp = await fetch(url, { credentials: "same-origin", ...options,
      headers: { Accept: "application/json", ...(options.headers || {}) } });
  } catch (e) {
    return { status: 0, data: { error: "the server cannot be reached; is it running?" } };
  }
  let data;
  try { data = await resp.json(); } catch (e) {
    data = { error: `the server answered ${resp.status} ${resp.statusText}` };
  }
  return { status: resp.status, data };
}

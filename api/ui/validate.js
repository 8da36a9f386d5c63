// Client-side checks of the key form, mirroring the admin API's rules so that bad input is
// shown next to its field before anything is sent.

export const MAX_NAME = 100;
export const MAX_RATE_LIMIT = 100000000;
export const MAX_ALLOWED_IPS = 100;

function isIPv4(text) {
  const parts = text.split('.');
  if (parts.length !== 4) return false;
  return parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255 && (p === '0' || !p.startsWith('0')));
}

function isIPv6(text) {
  if (!/^[0-9a-fA-F:.]+$/.test(text) || !text.includes(':')) return false;
  try {
    // The URL parser implements the full IPv6 grammar (compression, embedded IPv4).
    return new URL(`http://[${text}]/`).hostname.length > 2;
  } catch {
    return false;
  }
}

/** An IPv4 or IPv6 address, or a CIDR network of either. */
export function isIpOrCidr(raw) {
  const text = raw.trim();
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const bits = slash < 0 ? null : text.slice(slash + 1);
  if (bits !== null && !/^\d{1,3}$/.test(bits)) return false;
  if (isIPv4(addr)) return bits === null || Number(bits) <= 32;
  if (isIPv6(addr)) return bits === null || Number(bits) <= 128;
  return false;
}

/** Splits the textarea into entries: one per line, blank lines ignored. */
export function ipLines(text) {
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0);
}

/** null when fine, else the message for the field. */
export function checkName(name) {
  const n = name.trim();
  if (!n) return 'Enter a name for the key.';
  if ([...n].length > MAX_NAME) return `Use at most ${MAX_NAME} characters.`;
  return null;
}

export function checkIps(text) {
  const lines = text.split(/\r?\n/);
  const entries = ipLines(text);
  if (entries.length > MAX_ALLOWED_IPS) return `Enter at most ${MAX_ALLOWED_IPS} addresses.`;
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i].trim();
    if (line && !isIpOrCidr(line)) {
      return `Line ${i + 1}: "${line}" is not an IP address (for example 203.0.113.10 or 203.0.113.0/24).`;
    }
  }
  return null;
}

/** Returns {value, error}: value is null for "no limit". */
export function parseRateLimit(text) {
  const t = text.trim().replace(/[,_\s]/g, '');
  if (!t) return { value: null, error: null };
  if (!/^\d+$/.test(t) || Number(t) <= 0) {
    return { value: null, error: 'Enter a whole number greater than 0, or leave it empty for no limit.' };
  }
  if (Number(t) > MAX_RATE_LIMIT) {
    return { value: null, error: `Enter at most ${MAX_RATE_LIMIT.toLocaleString()} requests per hour.` };
  }
  return { value: Number(t), error: null };
}

/**
 * The expiration date field (yyyy-mm-dd, local time): the key expires at the end of that day.
 * Returns {value: ISO string | null, error}.
 */
export function parseExpiry(text, now = new Date()) {
  const t = text.trim();
  if (!t) return { value: null, error: null };
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(t);
  if (!m) return { value: null, error: 'Enter a date as YYYY-MM-DD.' };
  const end = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]), 23, 59, 59, 0);
  if (Number.isNaN(end.getTime()) || end.getDate() !== Number(m[3])) {
    return { value: null, error: 'Enter a real calendar date.' };
  }
  if (end.getTime() <= now.getTime()) return { value: null, error: 'Choose a date in the future.' };
  return { value: end.toISOString(), error: null };
}

/** The yyyy-mm-dd of a timestamp in local time, for a date input. */
export function toDateInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

// --- Webhook endpoints (docs/integrator-events.md) ---

export const MIN_PER_SECOND = 1;
export const MAX_PER_SECOND = 1000;
export const DEFAULT_PER_SECOND = 50;
export const MAX_DESCRIPTION = 500;
export const MAX_URL = 2048;

/**
 * The endpoint URL: an absolute http(s) URL with a host. Whether plain http:// is accepted
 * (only to a loopback host, only in development) and whether the host is public is the
 * API's call; its answer is shown on the field.
 */
export function checkWebhookUrl(raw) {
  const text = raw.trim();
  if (!text) return 'Enter the URL EzPulze should post events to.';
  if (text.length > MAX_URL) return `Use at most ${MAX_URL.toLocaleString()} characters.`;
  let url;
  try {
    url = new URL(text);
  } catch {
    return 'Enter a full URL, for example https://hooks.example.com/ezpulze.';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'Use an https:// URL.';
  if (!url.hostname) return 'Enter a full URL, for example https://hooks.example.com/ezpulze.';
  if (url.username || url.password) return 'Leave user names and passwords out of the URL.';
  return null;
}

/** Returns {value, error} for the requests-per-second cap (1..1000). */
export function parsePerSecond(text) {
  const t = text.trim().replace(/[,_\s]/g, '');
  if (!/^\d+$/.test(t) || Number(t) < MIN_PER_SECOND || Number(t) > MAX_PER_SECOND) {
    return { value: null, error: `Enter a whole number from ${MIN_PER_SECOND} to ${MAX_PER_SECOND.toLocaleString()}.` };
  }
  return { value: Number(t), error: null };
}

export function checkDescription(text) {
  if ([...text.trim()].length > MAX_DESCRIPTION) return `Use at most ${MAX_DESCRIPTION} characters.`;
  return null;
}

/** A datetime-local value (local time, e.g. 2026-12-07T10:00) → {value: ISO string, error}. */
export function parseSince(text, now = new Date()) {
  const t = text.trim();
  if (!t) return { value: null, error: 'Enter the date and time to recover from.' };
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(t)) return { value: null, error: 'Enter a date and time.' };
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return { value: null, error: 'Enter a real date and time.' };
  if (d.getTime() > now.getTime()) return { value: null, error: 'Choose a time in the past.' };
  return { value: d.toISOString(), error: null };
}

/** The datetime-local value (yyyy-mm-ddThh:mm, local time) of a Date. */
export function toDateTimeInput(d) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

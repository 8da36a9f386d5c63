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

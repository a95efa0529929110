// How the page writes numbers: milliseconds to three significant digits, counts whole, rates to one decimal.

const DASH = "–";

/** Milliseconds: `0.423`, `12.3`, `123`, `4567` (three significant digits, whole above 100). */
export function ms(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return DASH;
  return value >= 100 ? String(Math.round(value)) : value.toPrecision(3).replace(/\.?0+$/, "");
}

export function count(value) {
  if (value === null || value === undefined) return DASH;
  return String(value);
}

export function rate(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return DASH;
  return value >= 100 ? String(Math.round(value)) : value.toFixed(1);
}

export function percent(fraction) {
  if (fraction === null || fraction === undefined || !Number.isFinite(fraction)) return DASH;
  return `${(fraction * 100).toFixed(fraction === 0 ? 0 : 2)}%`;
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** An epoch-ms time as the local date and time, to the second. */
export function time(epochMs) {
  if (!epochMs) return DASH;
  return new Date(epochMs).toLocaleString(undefined, { hour12: false });
}

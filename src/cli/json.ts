/**
 * JSON text of the command line's reports. JSON has no number for Infinity or NaN, and
 * JSON.stringify writes both as null, which the reports keep for absent values (such as an
 * FRC that never crosses a threshold). So a number that is not finite is written as the
 * string "Infinity", "-Infinity" or "NaN", which Python's float() and JavaScript's Number()
 * read back.
 */
export function formatJson(value: unknown): string {
  const text = JSON.stringify(value, (_key, item: unknown) => (typeof item === 'number' && !Number.isFinite(item) ? String(item) : item), 2);
  return `${text}\n`;
}

// Plain-text tables for the report: no dependencies, aligned columns, readable in any terminal.

/**
 * Formats rows (arrays of strings) under `headers`. Columns listed in `alignRight` are padded on
 * the left, so numbers line up on their last digit.
 */
export function formatTable(headers, rows, { alignRight = [] } = {}) {
  const widths = headers.map((header, column) => Math.max(header.length, ...rows.map((row) => String(row[column] ?? '').length)));
  const line = (cells) =>
    cells
      .map((cell, column) => {
        const text = String(cell ?? '');
        return alignRight.includes(column) ? text.padStart(widths[column]) : text.padEnd(widths[column]);
      })
      .join('  ')
      .trimEnd();
  return [line(headers), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.map(line)].join('\n');
}

/** A number with thousands separators and a fixed number of decimals; "n/a" when unknown. */
export function formatNumber(value, digits = 0) {
  if (value === undefined || !Number.isFinite(value)) return 'n/a';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/**
 * Folds host names into ranges as clush/dshbak do: 10.0.1.1 10.0.1.2 10.0.1.3 10.0.1.7 ->
 * 10.0.1.[1-3,7]; web01 web02 -> web[01-02]. Names are grouped by everything around their last
 * number; numbers of different zero-padded widths are not merged.
 */
export function foldHosts(names: readonly string[]): string {
  const groups = new Map<string, { head: string; tail: string; width: number; nums: number[] }>();
  const loose: string[] = [];
  for (const name of names) {
    const m = /^(.*?)(\d+)(\D*)$/.exec(name);
    if (!m) {
      loose.push(name);
      continue;
    }
    const [, head = '', digits = '', tail = ''] = m;
    const width = digits.startsWith('0') && digits.length > 1 ? digits.length : 0;
    const key = `${head}\u0000${tail}\u0000${width}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { head, tail, width, nums: [] }));
    g.nums.push(Number(digits));
  }
  const parts: string[] = [];
  for (const g of groups.values()) {
    const nums = [...new Set(g.nums)].sort((a, b) => a - b);
    const pad = (n: number) => String(n).padStart(g.width, '0');
    if (nums.length === 1) {
      parts.push(`${g.head}${pad(nums[0] as number)}${g.tail}`);
      continue;
    }
    const ranges: string[] = [];
    let start = nums[0] as number;
    let prev = start;
    for (const n of [...nums.slice(1), Number.NaN]) {
      if (n === prev + 1) {
        prev = n;
        continue;
      }
      ranges.push(start === prev ? pad(start) : `${pad(start)}-${pad(prev)}`);
      start = prev = n;
    }
    parts.push(`${g.head}[${ranges.join(',')}]${g.tail}`);
  }
  return [...parts, ...loose.sort()].join(',');
}

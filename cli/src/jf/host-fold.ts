/**
 * Folds host names into ranges as clush/dshbak do: 10.0.1.1 10.0.1.2 10.0.1.3 10.0.1.7 ->
 * 10.0.1.[1-3,7]; web01 web02 -> web[01-02]. Names are grouped by everything around their last
 * number; numbers of different zero-padded widths are not merged.
 */
export function foldHosts(names: readonly string[]): string {
  const parsed = names.map((name) => /^(.*?)(\d+)(\D*)$/.exec(name));
  // The zero-padded width of each head/tail pair: web01..web10 share one range, web1 does not.
  const widths = new Map<string, number>();
  for (const m of parsed) {
    if (m && (m[2] as string).startsWith('0') && (m[2] as string).length > 1)
      widths.set(`${m[1]}\u0000${m[3]}`, (m[2] as string).length);
  }
  const groups = new Map<string, { head: string; tail: string; width: number; nums: number[] }>();
  const loose: string[] = [];
  parsed.forEach((m, i) => {
    if (!m) return void loose.push(names[i] as string);
    const [, head = '', digits = '', tail = ''] = m;
    const padded = widths.get(`${head}\u0000${tail}`) ?? 0;
    const width = digits.length >= padded ? padded : 0;
    const key = `${head}\u0000${tail}\u0000${width}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { head, tail, width, nums: [] }));
    g.nums.push(Number(digits));
  });
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

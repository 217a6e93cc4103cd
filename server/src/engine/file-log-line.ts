/** The human-readable line of a file log, in BK-JOB's shape (behaviour notes §6). */

export function humanSize(bytes: number): string {
  const units = ['Bytes', 'KB', 'MB', 'GB', 'TB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 1 : 2)} ${units[i]}`;
}

export function humanSpeed(bytesPerSecond: number): string {
  return `${Math.round(bytesPerSecond / 1024)} KB/s`;
}

export function progressText(bytes: number, size: number): string {
  return `${size === 0 ? 100 : Math.floor((bytes * 100) / size)}%`;
}

function timestamp(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function fileLogLine(f: {
  at: number;
  path: string;
  size: number;
  bytes: number;
  speed: number;
  state: string;
  detail: string;
}): string {
  return `[${timestamp(f.at)}] FileName: ${f.path} FileSize: ${humanSize(f.size)} State: ${f.state} Speed: ${humanSpeed(f.speed)} Progress: ${progressText(f.bytes, f.size)} Detail: ${f.detail}`;
}

/** Path rules for file steps: absolute POSIX paths that cannot climb out with "..". */
import { ApiError } from '../error-catalogue.js';

function hasDotDot(p: string): boolean {
  return p.split('/').some((part) => part === '..');
}

/** A target directory: absolute, no "..", no NUL. Answers 1241007 naming the field. */
export function checkTargetPath(param: string, value: string): string {
  const p = value.trim();
  if (!p.startsWith('/') || hasDotDot(p) || p.includes('\u0000')) {
    throw new ApiError('MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME', {
      param,
      reason: 'must be an absolute path without ".." parts',
    });
  }
  return p;
}

/** A source path on a host: absolute, no "..", may end with "/" (a directory) or a last part REGEX:<pattern>. */
export function checkSourcePath(param: string, value: string): string {
  const p = value.trim();
  const last = p.slice(p.lastIndexOf('/') + 1);
  if (last.startsWith('REGEX:')) {
    try {
      new RegExp(last.slice('REGEX:'.length));
    } catch {
      throw new ApiError('MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME', {
        param,
        reason: `"${last}" is not a valid regular expression`,
      });
    }
  }
  checkTargetPath(param, p.slice(0, p.length - (last.startsWith('REGEX:') ? last.length : 0)) || '/');
  return p;
}

/** A file name given on its own (file_target_name): no directories. */
export function checkFileName(param: string, value: string): string {
  if (value === '.' || value === '..' || value.includes('/') || value.includes('\u0000')) {
    throw new ApiError('MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME', {
      param,
      reason: 'must be a plain file name',
    });
  }
  return value;
}

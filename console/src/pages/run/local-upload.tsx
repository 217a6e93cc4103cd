/**
 * Local files as a push-file source, the way `jf run file` sends them: one upload URL per file
 * from generate_local_file_upload_url, the bytes PUT to it (XMLHttpRequest, for upload
 * progress), and the stored path the server answers given to fast_transfer_file as file_type 2.
 * The server's refusal (too large, URL expired) is shown with its code and message.
 */
import { useState } from 'react';
import { ApiFailure, NetworkFailure, api } from '../../api/client';
import type { Envelope } from '../../api/client';
import { ApiError } from '../../components/api-error';
import { t } from '../../i18n';
import { formatBytes } from '../../model/bytes';

export interface Upload {
  name: string;
  size: number;
  sent: number;
  /** The stored path once the server has the whole file. */
  path?: string;
  error?: unknown;
}

/** PUTs one file; resolves with the stored path the server confirms. */
function put(url: string, file: File, onProgress: (sent: number) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    // Same origin as the page whatever address the server put in the URL (a proxy may front it).
    const { pathname } = new URL(url, location.href);
    xhr.open('PUT', pathname);
    xhr.responseType = 'json';
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => {
      const env = xhr.response as Envelope<{ path: string }> | null;
      if (env && env.result) resolve(env.data.path);
      else if (env) reject(new ApiFailure(env.code, env.message, env.request_id));
      else reject(new NetworkFailure(`HTTP ${xhr.status} without a JSON reply`));
    };
    xhr.onerror = () => reject(new NetworkFailure(t('upload.failed', { name: file.name })));
    xhr.send(file);
  });
}

export function LocalUpload(props: {
  scopeParams: { bk_scope_type: string; bk_scope_id: string };
  uploads: Upload[];
  onUploads: (update: (all: Upload[]) => Upload[]) => void;
}) {
  const { uploads, onUploads } = props;
  const [error, setError] = useState<unknown>();
  const [problem, setProblem] = useState('');

  async function add(files: File[]) {
    setError(undefined);
    setProblem('');
    const taken = new Set(uploads.map((u) => u.name));
    const same = files.find((f, i) => taken.has(f.name) || files.findIndex((g) => g.name === f.name) !== i);
    if (same) {
      setProblem(t('upload.sameName', { name: same.name }));
      return;
    }
    if (files.length === 0) return;
    let urls: Record<string, { upload_url: string; path: string }>;
    try {
      ({ url_map: urls } = await api.call<{ url_map: Record<string, { upload_url: string; path: string }> }>(
        'generate_local_file_upload_url',
        { ...props.scopeParams, file_name_list: files.map((f) => f.name) },
      ));
    } catch (err) {
      setError(err);
      return;
    }
    onUploads((all) => [...all, ...files.map((f) => ({ name: f.name, size: f.size, sent: 0 }))]);
    const patch = (name: string, p: Partial<Upload>) =>
      onUploads((all) => all.map((u) => (u.name === name ? { ...u, ...p } : u)));
    await Promise.all(
      files.map(async (f) => {
        const target = urls[f.name];
        if (!target) return patch(f.name, { error: new Error(t('upload.failed', { name: f.name })) });
        try {
          const path = await put(target.upload_url, f, (sent) => patch(f.name, { sent }));
          patch(f.name, { path, sent: f.size });
        } catch (err) {
          patch(f.name, { error: err });
        }
      }),
    );
  }

  return (
    <fieldset className="file-source local-upload">
      <legend>{t('upload.title')}</legend>
      <label>
        {t('upload.pick')}
        <input
          type="file"
          multiple
          onChange={(e) => {
            const files = [...(e.target.files ?? [])];
            e.target.value = '';
            void add(files);
          }}
        />
      </label>
      <p className="small muted">{t('upload.hint')}</p>
      <ApiError error={error} />
      {problem ? (
        <p className="warning" role="alert">
          {problem}
        </p>
      ) : null}
      {uploads.length > 0 ? (
        <ul className="upload-list">
          {uploads.map((u) => (
            <li key={u.name}>
              {u.path ? (
                <span role="status">{t('upload.done', { name: u.name, size: formatBytes(u.size) })}</span>
              ) : u.error ? (
                <span>{t('upload.failed', { name: u.name })}</span>
              ) : (
                <span>
                  {t('upload.progress', {
                    name: u.name,
                    done: formatBytes(u.sent),
                    total: formatBytes(u.size),
                  })}{' '}
                  <progress max={u.size || 1} value={u.sent} aria-label={u.name} />
                </span>
              )}{' '}
              <button
                type="button"
                onClick={() => onUploads((all) => all.filter((x) => x.name !== u.name))}
                aria-label={t('upload.remove', { name: u.name })}
              >
                ×
              </button>
              {u.error ? <ApiError error={u.error} /> : null}
            </li>
          ))}
        </ul>
      ) : null}
    </fieldset>
  );
}

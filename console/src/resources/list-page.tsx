/**
 * What the list pages (scripts, templates, plans) share: a page of a BK-JOB list filtered by a
 * name (any change goes back to the first page), the heading with its "new" link for admins,
 * the name search box, and the footer (empty line and pager).
 */
import { useState } from 'react';
import { Link } from 'react-router';
import { api } from '../api/client';
import { useScope } from '../session/scope';
import { reaches } from '../session/session';
import type { PageOf } from './format';
import { ListFooter } from './pager';
import { useLoad } from './use-load';
import type { Loaded } from './use-load';

export const PAGE_LENGTH = 50;

export function useNamedList<T>(
  endpoint: string,
  filters: Record<string, unknown> = {},
): {
  name: string;
  setName(name: string): void;
  start: number;
  setStart(start: number): void;
  list: Loaded<PageOf<T>>;
} {
  const scope = useScope();
  const [name, setNameValue] = useState('');
  const [start, setStart] = useState(0);
  const list = useLoad(
    (signal) =>
      api.read<PageOf<T>>(
        endpoint,
        { ...scope.params, ...filters, name, start, length: PAGE_LENGTH },
        signal,
      ),
    [scope.type, scope.id, endpoint, JSON.stringify(filters), name, start],
  );
  const setName = (n: string) => {
    setNameValue(n);
    setStart(0);
  };
  return { name, setName, start, setStart, list };
}

export function PageHead({
  id,
  title,
  newLink,
}: {
  id: string;
  title: string;
  newLink?: { path: string; label: string };
}) {
  const scope = useScope();
  return (
    <div className="page-head">
      <h1 id={id}>{title}</h1>
      {newLink && reaches(scope.role, 'admin') ? (
        <Link className="button primary" to={scope.path(newLink.path)}>
          {newLink.label}
        </Link>
      ) : null}
    </div>
  );
}

export function NameSearch({
  label,
  value,
  onChange,
}: {
  label: string;
  value: string;
  onChange(v: string): void;
}) {
  return (
    <label>
      {label}
      <input type="search" value={value} onChange={(e) => onChange(e.target.value)} />
    </label>
  );
}

/** The footer of a list read with useNamedList: the empty-list line and the pager. */
export function NamedListFooter({
  named,
  empty,
}: {
  named: { start: number; setStart(start: number): void; list: Loaded<PageOf<unknown>> };
  empty: string;
}) {
  return (
    <ListFooter
      total={named.list.data?.total}
      empty={empty}
      start={named.start}
      length={PAGE_LENGTH}
      onPage={named.setStart}
    />
  );
}

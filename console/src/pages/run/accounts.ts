import { useEffect, useState } from 'react';
import { api } from '../../api/client';

export interface Account {
  id: number;
  alias: string;
  account: string;
  category?: number;
  /** 1 Linux, 2 Windows (system accounts) */
  type?: number;
}

/** BK-JOB picks the account by the OS the language runs on: bat and PowerShell on Windows. */
export function osOfLanguage(language: number): 'Windows' | 'Linux' {
  return language === 2 || language === 5 ? 'Windows' : 'Linux';
}

/** SQL runs as a database account (fast_execute_sql); scripts as a system account of their OS. */
export function accountsFor(accounts: Account[], language: number): Account[] {
  if (language === SQL) return accounts.filter((a) => a.category === 2);
  const windows = osOfLanguage(language) === 'Windows';
  return accounts.filter((a) => a.category === 1 && (a.type === 2) === windows);
}

export const SQL = 6;

/** The scope's execution accounts (get_account_list): system accounts, or with `all` database ones too. */
export function useAccounts(scopeParams: { bk_scope_type: string; bk_scope_id: string }, all = false) {
  const [accounts, setAccounts] = useState<Account[]>([]);
  const [error, setError] = useState<unknown>();
  const { bk_scope_type, bk_scope_id } = scopeParams;
  useEffect(() => {
    api
      .readAll<Account>('get_account_list', { bk_scope_type, bk_scope_id, ...(all ? {} : { category: 1 }) })
      .then((r) => setAccounts(r.data ?? []), setError);
  }, [bk_scope_type, bk_scope_id, all]);
  return { accounts, error };
}

export function base64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

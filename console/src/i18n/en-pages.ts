/** English strings of the resource pages (scripts, plans, crons, accounts, hosts, admin). */
export const enPages = {} as const;

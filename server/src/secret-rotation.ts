/**
 * Resealing after a server key rotation (app secrets, account passwords, sensitive step
 * parameters, cipher variables inside template, plan, cron and job variable documents, callback
 * URLs of jobs and of queued callbacks, confirmation webhook URLs of templates and steps). A
 * server started with a new key and the old one among `serverKeysPrevious` opens old values and
 * seals new ones under the new key; at start it also reseals, in the background, every stored
 * value not yet under the current key (and seals the sensitive parameters, webhook URLs and
 * callback URLs stored before sealing existed). Once the
 * log reports the reseal done with nothing left, the previous key can be dropped.
 *
 * Rows are found by an index on the key id (callback URLs, which have none, by a walk over the
 * rows holding one, only while earlier keys are given) and rewritten one at a time with a compare-and-set, so several servers of a
 * cluster resealing at once, and jobs running meanwhile, are safe.
 */
import { CRON_CIPHER_PURPOSE } from './crons/cron-values.js';
import { CALLBACK_URL_PURPOSE, openCallbackUrl } from './engine/callback-url.js';
import { resealStepSpec, sealedKeyOf } from './engine/step-secrets.js';
import { parseStepSpec } from './engine/step-spec.js';
import { SENSITIVE_PARAM_PURPOSE, cipherPurpose } from './plans/plan-shapes.js';
import { SecretBox } from './secret-box.js';
import type { Services } from './services.js';
import { appSecretPurpose } from './store/app-store.js';
import type { SealedDocumentKind } from './store/sealed-document-store.js';

const PAGE = 200;

export interface ResealReport {
  resealed: number;
  /** Values sealed under a key this server does not hold. */
  unopenable: number;
  /** Rows changed by someone else between their read and their reseal: read again by another pass. */
  changed: number;
}

/** Steps' sealed values (step-secrets.ts) not under the current key, found by step_instance.sealed_key. */
export async function resealStepSpecs(
  services: Pick<Services, 'store' | 'secretBox' | 'log'>,
): Promise<ResealReport> {
  const report: ResealReport = { resealed: 0, unopenable: 0, changed: 0 };
  const executions = services.store.executions;
  const current = services.secretBox.currentKeyId;
  let after = 0;
  for (;;) {
    const rows = await executions.stepsToReseal(current, after, PAGE);
    if (rows.length === 0) break;
    for (const row of rows) {
      after = row.id;
      const spec = parseStepSpec(row.spec);
      let next: string;
      try {
        next = JSON.stringify(resealStepSpec(services.secretBox, spec));
      } catch (err) {
        report.unopenable++;
        services.log.error(
          { step: row.id, err: (err as Error).message },
          spec.kind === 'confirm' ? 'cannot reseal a webhook URL' : 'cannot reseal a sensitive parameter',
        );
        continue;
      }
      if (await executions.replaceStepSpec(row.id, row.spec, next, sealedKeyOf(parseStepSpec(next))))
        report.resealed++;
      else report.changed++;
    }
  }
  return report;
}

/** App secrets sealed under an earlier key (apps are few: all are read). */
export async function resealAppSecrets(
  services: Pick<Services, 'store' | 'secretBox' | 'log'>,
): Promise<ResealReport> {
  const report: ResealReport = { resealed: 0, unopenable: 0, changed: 0 };
  for (const app of await services.store.apps.listApps()) {
    if (app.secretSealed === '' || !services.secretBox.needsReseal(app.secretSealed)) continue;
    let sealed: string;
    try {
      const purpose = appSecretPurpose(app.appCode);
      sealed = services.secretBox.seal(services.secretBox.open(app.secretSealed, purpose), purpose);
    } catch (err) {
      report.unopenable++;
      services.log.error({ app: app.appCode, err: (err as Error).message }, 'cannot reseal an app secret');
      continue;
    }
    if (await services.store.apps.resealSecret(app, sealed)) report.resealed++;
    else report.changed++;
  }
  return report;
}

/** Execution account passwords (purpose `account:<id>`, as accounts.ts seals them). */
export async function resealAccountPasswords(
  services: Pick<Services, 'store' | 'secretBox' | 'log'>,
): Promise<ResealReport> {
  const report: ResealReport = { resealed: 0, unopenable: 0, changed: 0 };
  for (const { id, sealed } of await services.store.accounts.sealedPasswords()) {
    if (!services.secretBox.needsReseal(sealed)) continue;
    let next: string;
    try {
      const purpose = `account:${id}`;
      next = services.secretBox.seal(services.secretBox.open(sealed, purpose), purpose);
    } catch (err) {
      report.unopenable++;
      services.log.error({ account: id, err: (err as Error).message }, 'cannot reseal an account password');
      continue;
    }
    if (await services.store.accounts.resealPassword(id, sealed, next)) report.resealed++;
    else report.changed++;
  }
  return report;
}

/**
 * Callback URLs (purpose CALLBACK_URL_PURPOSE) of jobs and of queued callbacks: those sealed
 * under an earlier key are resealed, and plain ones, stored before callback URLs were sealed,
 * are sealed (as steps' sensitive parameters of that time are). A job's callbacks do not have
 * to hold the same text as the job (finishedWithoutCallback tells them apart by payload), so
 * each row is rewritten on its own.
 */
export async function resealCallbackUrls(
  services: Pick<Services, 'store' | 'secretBox' | 'log'>,
): Promise<ResealReport> {
  const report: ResealReport = { resealed: 0, unopenable: 0, changed: 0 };
  const box = services.secretBox;
  // No column holds these values' key ids, so finding them walks every job with a callback URL:
  // done only while a rotation is under way (earlier keys given), not at every start.
  if (!box.holdsPreviousKeys) return report;
  const executions = services.store.executions;
  for (const table of ['job_instance', 'callback'] as const) {
    let after = 0;
    for (;;) {
      const rows = await executions.callbackUrlsToReseal(table, box.currentPrefix, after, PAGE);
      if (rows.length === 0) break;
      for (const row of rows) {
        after = row.id;
        let next: string;
        try {
          next = box.seal(openCallbackUrl(box, row.url), CALLBACK_URL_PURPOSE);
        } catch (err) {
          report.unopenable++;
          // The row's id, never its URL.
          services.log.error(
            { [table === 'callback' ? 'callback' : 'job']: row.id, err: (err as Error).message },
            'cannot reseal a callback URL',
          );
          continue;
        }
        if (await executions.replaceCallbackUrl(table, row.id, row.url, next)) report.resealed++;
        else report.changed++;
      }
    }
  }
  return report;
}

const DOCUMENT_KINDS: readonly SealedDocumentKind[] = ['template', 'plan', 'cron', 'job_vars'];

/**
 * Cipher variable values: `vars[].sealed` of template and plan bodies (purpose per variable
 * name), the array of a cron's values (one purpose for all) and of a job's variables.
 */
export async function resealCipherVariables(
  services: Pick<Services, 'store' | 'secretBox' | 'log'>,
): Promise<ResealReport> {
  const report: ResealReport = { resealed: 0, unopenable: 0, changed: 0 };
  const box = services.secretBox;
  const docs = services.store.sealedDocuments;
  for (const kind of DOCUMENT_KINDS) {
    let after = 0;
    for (;;) {
      const rows = await docs.page(kind, after, PAGE);
      if (rows.length === 0) break;
      for (const row of rows) {
        after = row.id;
        const parsed = JSON.parse(row.document) as unknown;
        const vars = (Array.isArray(parsed) ? parsed : (parsed as { vars?: unknown }).vars) as
          { name?: string; sealed?: string }[] | undefined;
        let moved = 0;
        for (const v of vars ?? []) {
          if (!v.sealed || !box.needsReseal(v.sealed)) continue;
          const purpose = kind === 'cron' ? CRON_CIPHER_PURPOSE : cipherPurpose(v.name ?? '');
          try {
            v.sealed = box.seal(box.open(v.sealed, purpose), purpose);
            moved++;
          } catch (err) {
            report.unopenable++;
            services.log.error(
              { [kind]: row.id, variable: v.name, err: (err as Error).message },
              'cannot reseal a cipher variable',
            );
          }
        }
        if (kind === 'template') moved += resealTemplateValues(services, row.id, parsed, report);
        if (moved === 0) continue;
        if (await docs.replace(kind, row.id, row.document, JSON.stringify(parsed))) report.resealed += moved;
        else report.changed++;
      }
    }
  }
  return report;
}

/**
 * A template's sealed values under the current key (from an older one, or plain as templates
 * stored them before they were sealed): sensitive script parameters and confirmation webhook
 * URLs. Returns how many moved.
 */
function resealTemplateValues(
  services: Pick<Services, 'secretBox' | 'log'>,
  templateId: number,
  body: unknown,
  report: ResealReport,
): number {
  const box = services.secretBox;
  type Step = {
    script_info?: { script_param?: string; is_param_sensitive?: number };
    approval_info?: { webhook_url?: string };
  };
  const values: { value: string; purpose: string; what: string; set: (v: string) => void }[] = [];
  for (const { script_info: si, approval_info: ai } of (body as { steps?: Step[] }).steps ?? []) {
    if (si?.is_param_sensitive === 1 && si.script_param) {
      const set = (v: string) => (si.script_param = v);
      values.push({
        value: si.script_param,
        purpose: SENSITIVE_PARAM_PURPOSE,
        what: 'a sensitive parameter',
        set,
      });
    }
    if (ai?.webhook_url) {
      const set = (v: string) => (ai.webhook_url = v);
      values.push({ value: ai.webhook_url, purpose: CALLBACK_URL_PURPOSE, what: 'a webhook URL', set });
    }
  }
  let moved = 0;
  for (const { value, purpose, what, set } of values) {
    const sealed = SecretBox.isSealed(value);
    if (sealed && !box.needsReseal(value)) continue;
    try {
      set(box.seal(sealed ? box.open(value, purpose) : value, purpose));
      moved++;
    } catch (err) {
      report.unopenable++;
      services.log.error({ template: templateId, err: (err as Error).message }, `cannot reseal ${what}`);
    }
  }
  return moved;
}

/** Passes over everything until one meets no row changed under it (at most MAX_PASSES). */
const MAX_PASSES = 5;

async function resealAll(services: Services): Promise<ResealReport> {
  const total: ResealReport = { resealed: 0, unopenable: 0, changed: 0 };
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    const reports = [
      await resealAppSecrets(services),
      await resealAccountPasswords(services),
      await resealStepSpecs(services),
      await resealCipherVariables(services),
      await resealCallbackUrls(services),
    ];
    total.resealed += reports.reduce((n, r) => n + r.resealed, 0);
    // What is left unopenable, and changed, is what the last pass saw.
    total.unopenable = reports.reduce((n, r) => n + r.unopenable, 0);
    total.changed = reports.reduce((n, r) => n + r.changed, 0);
    if (total.changed === 0) break;
  }
  return total;
}

/** Runs the reseal without delaying start-up; the outcome is logged. */
export function resealInBackground(services: Services): void {
  resealAll(services)
    .then((r) =>
      services.log.info(
        { ...r, keyId: services.secretBox.currentKeyId },
        'secrets resealed under the current server key',
      ),
    )
    .catch((err: unknown) => services.log.error({ err }, 'resealing secrets failed'));
}

/**
 * Every error code Jobfleet answers with, in one place. Codes are BK-JOB's where BK-JOB has
 * one (see the behaviour notes §2.3), so clients written against BK-JOB branch correctly.
 * docs/api-errors.md lists the same table; a test fails when the two drift apart.
 *
 * Every failure is answered with HTTP 200 and `result: false`, as BK-JOB does: its clients
 * treat any other status as a transport error. `http` stays in the table so that a future
 * non-BK endpoint can choose differently without a second catalogue.
 *
 * Message templates name their parameters in braces: {param}.
 */
export const ERROR_CATALOGUE = {
  INTERNAL_ERROR: {
    code: 1240002,
    http: 200,
    message: 'Internal error; the server log has details under request id {requestId}',
  },
  BAD_REQUEST: { code: 1240003, http: 200, message: 'Bad request: {reason}' },
  ILLEGAL_PARAM: { code: 1241002, http: 200, message: 'Illegal parameter: {reason}' },
  UNSUPPORTED_OPERATION: { code: 1241003, http: 200, message: 'Operation not allowed: {reason}' },
  MISSING_PARAM_WITH_PARAM_NAME: { code: 1241004, http: 200, message: 'Missing request parameter [{param}]' },
  ILLEGAL_PARAM_WITH_PARAM_NAME: {
    code: 1241005,
    http: 200,
    message: 'Illegal request parameter [{param}]: {reason}',
  },
  MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME: {
    code: 1241007,
    http: 200,
    message: 'Missing or illegal request parameter [{param}]: {reason}',
  },
  ILLEGAL_PARAM_WITH_PARAM_NAME_AND_REASON: {
    code: 1241010,
    http: 200,
    message: 'Illegal request parameter [{param}]: {reason}',
  },
  REPEAT_START_JOB: {
    code: 1241015,
    http: 200,
    message: 'Job instance {jobInstanceId} has already been started',
  },
  BK_PERMISSION_DENIED: {
    code: 9900403,
    http: 200,
    message: 'App {appCode} has no permission for {resource}',
  },
  APP_NOT_EXIST: { code: 1243049, http: 200, message: 'Scope {scopeType}:{scopeId} does not exist' },
  SCRIPT_NOT_EXIST: {
    code: 1243001,
    http: 200,
    message: 'Script {ref} does not exist in this scope',
  },
  SERVER_EMPTY: {
    code: 1244001,
    http: 200,
    message: 'target_server is empty: give host_id_list, ip_list, topo_node_list or dynamic_group_list',
  },
  HOST_INVALID: {
    code: 1244002,
    http: 200,
    message: 'Hosts invalid: {count} hosts are not in {scopeType} [{scopeId}]: {hosts}',
  },
  ACCOUNT_NOT_EXIST: { code: 1244003, http: 200, message: 'Account [{account}] does not exist' },
  TASK_INSTANCE_NOT_EXIST: {
    code: 1244006,
    http: 200,
    message: 'Job instance {jobInstanceId} does not exist',
  },
  STEP_INSTANCE_NOT_EXIST: {
    code: 1244007,
    http: 200,
    message: 'Step instance {stepInstanceId} does not exist',
  },
  DANGEROUS_SCRIPT_FORBIDDEN_EXECUTION: {
    code: 1244019,
    http: 200,
    message: 'Script refused by dangerous-command rules: {matches}',
  },
  FILE_TASKS_EXCEEDS_LIMIT: {
    code: 1244021,
    http: 200,
    message: 'Too many file tasks: {count} (source hosts x files x targets, at most {limit})',
  },
  UPLOAD_FILE_MAX_SIZE_EXCEEDED: {
    code: 1243015,
    http: 200,
    message: 'Upload larger than the limit of {limit} bytes',
  },
  UPLOAD_URL_INVALID: {
    code: 1243016,
    http: 200,
    message:
      'Upload URL is unknown, already used or expired: ask generate_local_file_upload_url for a new one',
  },
  SCRIPT_TASK_TARGET_EXCEEDS_LIMIT: {
    code: 1244022,
    http: 200,
    message: 'Too many target hosts: {count} (at most {limit})',
  },
  INVALID_ROLLING_EXPR: {
    code: 1244026,
    http: 200,
    message: 'Invalid rolling expression "{expression}": use space-separated parts N, N%, +N or *N',
  },
  ROLLING_BATCH_LIMIT: {
    code: 1244027,
    http: 200,
    message: 'Rolling expression gives more than {limit} batches',
  },
  STEP_TARGET_EMPTY: {
    code: 1244028,
    http: 200,
    message: 'No target host left after resolving target_server',
  },
  SOURCE_EXECUTE_OBJECT_EMPTY: {
    code: 1244029,
    http: 200,
    message: 'No source host left after resolving {param}',
  },
  EXECUTE_OBJECT_NOT_EXIST: {
    code: 1244030,
    http: 200,
    message: 'Number of non-existent execution objects: {count}, execution object list: [{objects}]',
  },
  MISSING_USER_INFO: { code: 1247002, http: 200, message: 'Missing user: send bk_username' },
  MISSING_APP_CODE: {
    code: 1247004,
    http: 200,
    message:
      'Missing app credentials: send bk_app_code and bk_app_secret in the body, the query string or the X-Bkapi-Authorization header',
  },
  APP_AUTH_FAILED: {
    code: 1247403,
    http: 200,
    message: 'App authentication failed: bk_app_code or bk_app_secret is wrong',
  },
  ADMIN_AUTH_FAILED: {
    code: 1238001,
    http: 200,
    message: 'Admin API needs the admin token: send Authorization: Bearer <JOBFLEET_ADMIN_TOKEN>',
  },
  NOT_FOUND: { code: 1240004, http: 404, message: 'No such path: {method} {path}' },
  CONFLICT: { code: 1240005, http: 200, message: '{what} already exists' },
  RESOURCE_NOT_FOUND: { code: 1240006, http: 200, message: '{what} does not exist' },
  DANGEROUS_RULE_EXIST: {
    code: 1243056,
    http: 200,
    message:
      'A dangerous-command rule with expression "{expression}" for these script languages already exists',
  },
  // Jobfleet's own code: BK-JOB answers an unknown rule id with no specific code.
  DANGEROUS_RULE_NOT_EXIST: {
    code: 1243901,
    http: 200,
    message: 'Dangerous-command rule {id} does not exist',
  },
  // Jobfleet's own codes for ESB signature authentication (BK-JOB leaves it to the ESB).
  APP_SIGNATURE_MISSING: {
    code: 1247411,
    http: 200,
    message:
      'Signed request lacks {param}: send bk_timestamp, bk_nonce and bk_signature in the query string, or send bk_app_secret',
  },
  APP_SIGNATURE_INVALID: {
    code: 1247412,
    http: 200,
    message:
      'App authentication failed: bk_app_code is unknown or bk_signature does not match the request (HMAC-SHA1 of method, path, sorted query parameters and data=<body> under the app secret)',
  },
  APP_SIGNATURE_EXPIRED: {
    code: 1247413,
    http: 200,
    message:
      'Signed request is stale: bk_timestamp {timestamp} is {skew} from the server clock (at most {window} s); sign every request afresh and check the client clock',
  },
  APP_SIGNATURE_REPLAYED: {
    code: 1247414,
    http: 200,
    message:
      'Signed request replayed: app {appCode} already used bk_nonce {nonce} within the last {window} s; send a new random nonce with every request',
  },
  APP_SECRET_NOT_SEALED: {
    code: 1247415,
    http: 200,
    message:
      'App {appCode} cannot sign requests yet: its secret is held only as a hash from an earlier version. Re-set the secret (POST /api/admin/apps), or make one call with bk_app_secret, then sign again',
  },
  SCRIPT_NAME_DUPLICATE: {
    code: 1243002,
    http: 200,
    message: 'A script named "{name}" already exists here',
  },
  DELETE_ONLINE_SCRIPT_FAIL: {
    code: 1243005,
    http: 200,
    message: 'Script version {id} is online: publish another version or disable it before deleting it',
  },
  ACCOUNT_ALIAS_EXIST: {
    code: 1243007,
    http: 200,
    message: 'An account with alias "{alias}" already exists in this business and category',
  },
  DB_SYSTEM_ACCOUNT_IS_INVALID: {
    code: 1243008,
    http: 200,
    message: 'db_system_account_id {id} is not a system account of this business',
  },
  DELETE_REF_ACCOUNT_FORBIDDEN: {
    code: 1243014,
    http: 200,
    message: 'Account {id} is still cited by {citers}',
  },
  SCRIPT_VERSION_NAME_EXIST: {
    code: 1243036,
    http: 200,
    message: 'Script {scriptId} already has a version "{version}"',
  },
  DELETE_REF_SCRIPT_FAIL: {
    code: 1243054,
    http: 200,
    message: 'Script version {ids} is still cited by {citers}',
  },
  SCRIPT_DISABLED_SHOULD_NOT_EXECUTE: {
    code: 1244014,
    http: 200,
    message: 'Script version {id} is disabled and cannot run',
  },
  SCRIPT_NOT_EXECUTABLE_STATUS: {
    code: 1244018,
    http: 200,
    message: 'Script {ref} cannot run: {reason}',
  },
  DANGEROUS_RULE_EXPRESSION_UNSUPPORTED: {
    code: 1243902,
    http: 200,
    message:
      'Dangerous-command rule {id} expression "{expression}" cannot be evaluated in linear time ({reason}); update or delete the rule',
  },
  DANGEROUS_RULE_CHECK_LIMIT: {
    code: 1243903,
    http: 200,
    message: 'Script too large to check against {rules} dangerous-command rules: {reason}',
  },
  // Jobfleet's own code: BK-JOB leaves rate limiting to its API gateway, which answers outside the envelope.
  API_RATE_LIMITED: {
    code: 1240429,
    http: 200,
    message: 'Too many requests from {who}: at most {limit} per second; retry in {retryMs} ms',
  },
  TOO_MANY_STREAMS: {
    code: 1240430,
    http: 200,
    message: '{who} has {limit} event streams open, the most it may: close one first',
  },
  RUNNING_JOB_EXCEED_RESOURCE_SCOPE_QUOTA_LIMIT: {
    code: 1244032,
    http: 200,
    message:
      'Scope {scopeType}:{scopeId} already has {running} running jobs (at most {limit}): wait for some to finish',
  },
  // Jobfleet's own code: BK-JOB limits running jobs only, not the hosts in them.
  RUNNING_HOSTS_EXCEED_SCOPE_QUOTA: {
    code: 1244901,
    http: 200,
    message:
      'Scope {scopeType}:{scopeId} has {running} hosts in running jobs; {count} more would pass the limit of {limit}',
  },
  AGENT_REVOKED: {
    code: 1238002,
    http: 200,
    message:
      'The agent of host {hostId} ({cloudId}:{ip}) was revoked: an admin must readmit the host (jobfleet admin agent readmit {hostId}) before an agent registers for it again',
  },
  LOGIN_FAILED: { code: 1238010, http: 200, message: 'Sign-in failed: wrong user name or password' },
  LOGIN_RATE_LIMITED: {
    code: 1238011,
    http: 200,
    message: 'Too many failed sign-ins for this {what}; try again in {seconds} s',
  },
  USER_AUTH_FAILED: {
    code: 1238012,
    http: 200,
    message: 'Not signed in: {reason}; sign in again or send Authorization: Bearer <personal API token>',
  },
  CSRF_CHECK_FAILED: {
    code: 1238013,
    http: 200,
    message:
      'Missing or wrong X-CSRF-Token header: a write with a session cookie must send the csrf_token given at sign-in',
  },
  USER_PERMISSION_DENIED: {
    code: 1238014,
    http: 200,
    message: 'User {username} may not {permission} in {resource}: that needs {needs}',
  },
  TASK_PLAN_NOT_EXIST: {
    code: 1243009,
    http: 200,
    message: 'Job plan {id} does not exist',
  },
  TASK_INSTANCE_RELATED_HOST_VAR_SERVER_EMPTY: {
    code: 1244009,
    http: 200,
    message: 'Host variable {name} has no hosts: give it hosts in the plan or in global_var_list',
  },
  EXECUTE_TASK_PLAN_ILLEGAL: {
    code: 1244011,
    http: 200,
    message: 'Job plan {id} has no enabled steps',
  },
  EXECUTE_TASK_PLAN_NOT_EXIST: {
    code: 1244012,
    http: 200,
    message: 'Job plan {id} does not exist',
  },
  NOT_IN_CONFIRM_USER_LIST: {
    code: 1244016,
    http: 200,
    message: '{user} is not an approver of step {stepInstanceId} (approvers: {approvers})',
  },
  JOB_TEMPLATE_NOT_EXIST: {
    code: 1243911,
    http: 200,
    message: 'Job template {id} does not exist',
  },
  JOB_TEMPLATE_NAME_EXIST: {
    code: 1243912,
    http: 200,
    message: 'A job template named "{name}" already exists in this scope',
  },
  JOB_PLAN_NAME_EXIST: {
    code: 1243913,
    http: 200,
    message: 'Template {templateId} already has a plan named "{name}"',
  },
  JOB_TEMPLATE_INVALID: {
    code: 1243914,
    http: 200,
    message: 'Invalid job template: {reason}',
  },
  REQUIRED_VARIABLE_MISSING: {
    code: 1244911,
    http: 200,
    message: 'Required global variables have no value: {names}',
  },
  ILLEGAL_PARAM_WITH_REASON: { code: 1241012, http: 200, message: 'Illegal request parameter: {reason}' },
  CRON_JOB_NOT_EXIST: { code: 1245001, http: 200, message: 'Cron {id} does not exist' },
  UPDATE_CRON_JOB_FAILED: { code: 1245002, http: 200, message: 'Cron {id} cannot be enabled: {reason}' },
  DELETE_CRON_FAILED: { code: 1245008, http: 200, message: 'Cron {id} cannot be deleted: it does not exist' },
  JOB_PLAN_USED_BY_CRON: {
    code: 1245901,
    http: 200,
    message: 'Job plan {id} is run by crons {crons}: delete them or point them at another plan first',
  },
  // Jobfleet's own code: also the error_code of each host of a step that could not be sent for it.
  SEALED_VALUE_UNOPENABLE: {
    code: 1244903,
    http: 200,
    message:
      'The {what} cannot be opened ({reason}): start the server with the key it was sealed under in JOBFLEET_SERVER_KEYS_PREVIOUS, or set the value again',
  },
} as const;

export type ErrorName = keyof typeof ERROR_CATALOGUE;

type Params = Record<string, string | number>;

export function renderMessage(template: string, params: Params): string {
  return template.replace(/\{(\w+)\}/g, (_, k: string) => (k in params ? String(params[k]) : `{${k}}`));
}

/** The BK-JOB permission object carried on 9900403 answers. */
export interface PermissionInfo {
  system_id: string;
  system_name: string;
  actions: {
    id: string;
    name: string;
    related_resource_types: {
      system_id: string;
      system_name: string;
      type: string;
      type_name: string;
      instances: { id: string; name: string; type: string; type_name: string }[][];
    }[];
  }[];
}

/** The one error type of the API: a catalogue entry plus the values for its message. */
export class ApiError extends Error {
  readonly code: number;
  readonly http: number;

  constructor(
    readonly errorName: ErrorName,
    readonly params: Params = {},
    readonly permission?: PermissionInfo,
  ) {
    const entry = ERROR_CATALOGUE[errorName];
    super(renderMessage(entry.message, params));
    this.code = entry.code;
    this.http = entry.http;
  }
}

/**
 * Versioned migrations, applied in order at start-up. A migration is never edited once it has
 * shipped; a change to the schema is a new entry at the end of the list.
 */
import { Migrator, sql } from 'kysely';
import type { Kysely, Migration, CreateTableBuilder } from 'kysely';
import type { EngineCapabilities } from './engines.js';
import { IP_SETS_CONFIRMED_KEY } from './step-ip-sets.js';

// Migrations operate on a schema that is still being built, so they see an untyped database.
type AnyDb = Kysely<unknown>;

function withId<T extends string>(t: CreateTableBuilder<T>, caps: EngineCapabilities): CreateTableBuilder<T> {
  return caps.name === 'sqlite'
    ? t.addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
    : t.addColumn('id', 'bigserial', (c) => c.primaryKey());
}

/**
 * PostgreSQL: how step_ip_set.ips is stored. A 50,000-host step's set is ~600 KB, written in
 * its job's transaction: compressing it took pglz ~5 ms, lz4 ~1 ms (to a third of the size).
 * A server built without lz4 stores it as it is (~2 ms, three times the bytes): pglz would
 * cost the accept more than the bytes do.
 */
async function ipSetStorage(db: AnyDb): Promise<void> {
  const { rows } = await sql<{ lz4: boolean }>`select 'lz4' = any(enumvals) as lz4
    from pg_settings where name = 'default_toast_compression'`.execute(db);
  if (rows[0]?.lz4) await sql`alter table step_ip_set alter column ips set compression lz4`.execute(db);
  else await sql`alter table step_ip_set alter column ips set storage external`.execute(db);
}

export function migrations(caps: EngineCapabilities): Record<string, Migration> {
  return {
    '0001_inventory': {
      async up(db: AnyDb) {
        await db.schema
          .createTable('app')
          .addColumn('app_code', 'text', (c) => c.primaryKey())
          .addColumn('secret_hash', 'text', (c) => c.notNull())
          .addColumn('scopes', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('biz')
          .addColumn('id', 'bigint', (c) => c.primaryKey())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('biz_set')
          .addColumn('id', 'bigint', (c) => c.primaryKey())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('biz_set_member')
          .addColumn('biz_set_id', 'bigint', (c) => c.notNull().references('biz_set.id').onDelete('cascade'))
          .addColumn('biz_id', 'bigint', (c) => c.notNull().references('biz.id').onDelete('cascade'))
          .addPrimaryKeyConstraint('biz_set_member_pk', ['biz_set_id', 'biz_id'])
          .execute();
        await withId(db.schema.createTable('host'), caps)
          .addColumn('cloud_id', 'bigint', (c) => c.notNull())
          .addColumn('ip', 'text', (c) => c.notNull())
          .addColumn('ipv6', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('hostname', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('os_type', 'text', (c) => c.notNull().defaultTo('linux'))
          .addColumn('agent_id', 'text', (c) => c.unique())
          .addColumn('agent_token_hash', 'text')
          .addColumn('agent_status', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('agent_version', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('last_heartbeat', 'bigint')
          .addColumn('biz_id', 'bigint', (c) => c.references('biz.id').onDelete('set null'))
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addUniqueConstraint('host_cloud_ip', ['cloud_id', 'ip'])
          .execute();
        await db.schema.createIndex('host_biz').on('host').column('biz_id').execute();
        await withId(db.schema.createTable('topo_set'), caps)
          .addColumn('biz_id', 'bigint', (c) => c.notNull().references('biz.id').onDelete('cascade'))
          .addColumn('name', 'text', (c) => c.notNull())
          .addUniqueConstraint('topo_set_name', ['biz_id', 'name'])
          .execute();
        await withId(db.schema.createTable('topo_module'), caps)
          .addColumn('biz_id', 'bigint', (c) => c.notNull().references('biz.id').onDelete('cascade'))
          .addColumn('set_id', 'bigint', (c) => c.notNull().references('topo_set.id').onDelete('cascade'))
          .addColumn('name', 'text', (c) => c.notNull())
          .addUniqueConstraint('topo_module_name', ['set_id', 'name'])
          .execute();
        await db.schema
          .createTable('host_module')
          .addColumn('host_id', 'bigint', (c) => c.notNull().references('host.id').onDelete('cascade'))
          .addColumn('module_id', 'bigint', (c) =>
            c.notNull().references('topo_module.id').onDelete('cascade'),
          )
          .addPrimaryKeyConstraint('host_module_pk', ['host_id', 'module_id'])
          .execute();
        await db.schema.createIndex('host_module_module').on('host_module').column('module_id').execute();
        await db.schema
          .createTable('dynamic_group')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('biz_id', 'bigint', (c) => c.notNull().references('biz.id').onDelete('cascade'))
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('filter', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await withId(db.schema.createTable('account'), caps)
          .addColumn('biz_id', 'bigint', (c) => c.notNull().references('biz.id').onDelete('cascade'))
          .addColumn('alias', 'text', (c) => c.notNull())
          .addColumn('os_user', 'text', (c) => c.notNull())
          .addColumn('os_type', 'text', (c) => c.notNull())
          .addColumn('category', 'integer', (c) => c.notNull().defaultTo(1))
          .addColumn('creator', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addUniqueConstraint('account_alias', ['biz_id', 'category', 'alias'])
          .execute();
      },
    },
    '0002_execution': {
      async up(db: AnyDb) {
        await withId(db.schema.createTable('job_instance'), caps)
          .addColumn('scope_type', 'text', (c) => c.notNull())
          .addColumn('scope_id', 'text', (c) => c.notNull())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('type', 'integer', (c) => c.notNull())
          .addColumn('launch_mode', 'integer', (c) => c.notNull())
          .addColumn('operator', 'text', (c) => c.notNull())
          .addColumn('app_code', 'text', (c) => c.notNull())
          .addColumn('status', 'integer', (c) => c.notNull())
          .addColumn('create_time', 'bigint', (c) => c.notNull())
          .addColumn('start_time', 'bigint')
          .addColumn('end_time', 'bigint')
          .addColumn('callback_url', 'text')
          .addColumn('client_request_id', 'text')
          .execute();
        await db.schema
          .createIndex('job_instance_scope_time')
          .on('job_instance')
          .columns(['scope_type', 'scope_id', 'create_time'])
          .execute();
        await db.schema.createIndex('job_instance_status').on('job_instance').column('status').execute();
        await withId(db.schema.createTable('step_instance'), caps)
          .addColumn('job_instance_id', 'bigint', (c) =>
            c.notNull().references('job_instance.id').onDelete('cascade'),
          )
          .addColumn('step_order', 'integer', (c) => c.notNull())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('type', 'integer', (c) => c.notNull())
          .addColumn('status', 'integer', (c) => c.notNull())
          .addColumn('execute_count', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('create_time', 'bigint', (c) => c.notNull())
          .addColumn('start_time', 'bigint')
          .addColumn('end_time', 'bigint')
          .addColumn('spec', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('step_instance_job')
          .on('step_instance')
          .column('job_instance_id')
          .execute();
        await db.schema
          .createTable('host_task')
          .addColumn('step_instance_id', 'bigint', (c) =>
            c.notNull().references('step_instance.id').onDelete('cascade'),
          )
          .addColumn('execute_count', 'integer', (c) => c.notNull())
          .addColumn('host_id', 'bigint', (c) => c.notNull())
          .addColumn('cloud_id', 'bigint', (c) => c.notNull())
          .addColumn('ip', 'text', (c) => c.notNull())
          .addColumn('ipv6', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('agent_id', 'text')
          .addColumn('status', 'integer', (c) => c.notNull())
          .addColumn('exit_code', 'integer')
          .addColumn('error_code', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('tag', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('start_time', 'bigint')
          .addColumn('end_time', 'bigint')
          .addColumn('log_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
          .addColumn('dropped_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
          .addPrimaryKeyConstraint('host_task_pk', ['step_instance_id', 'execute_count', 'host_id'])
          .execute();
        await db.schema.createIndex('host_task_status').on('host_task').column('status').execute();
        await db.schema
          .createTable('log_chunk')
          .addColumn('step_instance_id', 'bigint', (c) => c.notNull())
          .addColumn('execute_count', 'integer', (c) => c.notNull())
          .addColumn('host_id', 'bigint', (c) => c.notNull())
          .addColumn('offset', 'bigint', (c) => c.notNull())
          .addColumn('data', caps.binaryType, (c) => c.notNull())
          .addPrimaryKeyConstraint('log_chunk_pk', ['step_instance_id', 'execute_count', 'host_id', 'offset'])
          .execute();
        await withId(db.schema.createTable('callback'), caps)
          .addColumn('job_instance_id', 'bigint', (c) =>
            c.notNull().references('job_instance.id').onDelete('cascade'),
          )
          .addColumn('url', 'text', (c) => c.notNull())
          .addColumn('payload', 'text', (c) => c.notNull())
          .addColumn('state', 'text', (c) => c.notNull())
          .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('next_attempt_at', 'bigint', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('callback_due')
          .on('callback')
          .columns(['state', 'next_attempt_at'])
          .execute();
        await db.schema
          .createTable('callback_attempt')
          .addColumn('callback_id', 'bigint', (c) =>
            c.notNull().references('callback.id').onDelete('cascade'),
          )
          .addColumn('attempt', 'integer', (c) => c.notNull())
          .addColumn('at', 'bigint', (c) => c.notNull())
          .addColumn('http_status', 'integer')
          .addColumn('error', 'text', (c) => c.notNull().defaultTo(''))
          .addPrimaryKeyConstraint('callback_attempt_pk', ['callback_id', 'attempt'])
          .execute();
        // Idempotent submission looks jobs up by the caller's request id.
        await db.schema
          .createIndex('job_instance_client_request')
          .on('job_instance')
          .columns(['app_code', 'client_request_id'])
          .execute();
      },
    },
    '0003_dangerous_rules': {
      async up(db: AnyDb) {
        await withId(db.schema.createTable('dangerous_rule'), caps)
          .addColumn('expression', 'text', (c) => c.notNull())
          .addColumn('script_languages', 'integer', (c) => c.notNull())
          .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('action', 'integer', (c) => c.notNull())
          .addColumn('status', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('creator', 'text', (c) => c.notNull())
          .addColumn('create_time', 'bigint', (c) => c.notNull())
          .addColumn('last_modify_user', 'text', (c) => c.notNull())
          .addColumn('last_modify_time', 'bigint', (c) => c.notNull())
          .addUniqueConstraint('dangerous_rule_expression', ['expression', 'script_languages'])
          .execute();
        // No foreign keys: a hit outlives its rule (copied fields) and names a job only when one was made.
        await withId(db.schema.createTable('dangerous_rule_hit'), caps)
          .addColumn('rule_id', 'bigint', (c) => c.notNull())
          .addColumn('expression', 'text', (c) => c.notNull())
          .addColumn('description', 'text', (c) => c.notNull())
          .addColumn('action', 'integer', (c) => c.notNull())
          .addColumn('scope_type', 'text', (c) => c.notNull())
          .addColumn('scope_id', 'text', (c) => c.notNull())
          .addColumn('app_code', 'text', (c) => c.notNull())
          .addColumn('operator', 'text', (c) => c.notNull())
          .addColumn('script_language', 'integer', (c) => c.notNull())
          .addColumn('line', 'integer', (c) => c.notNull())
          .addColumn('line_content', 'text', (c) => c.notNull())
          .addColumn('match_content', 'text', (c) => c.notNull())
          .addColumn('intercepted', 'integer', (c) => c.notNull())
          .addColumn('job_instance_id', 'bigint')
          .addColumn('create_time', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('dangerous_rule_hit_scope')
          .on('dangerous_rule_hit')
          .columns(['scope_type', 'scope_id', 'id'])
          .execute();
      },
    },
    '0004_job_control': {
      async up(db: AnyDb) {
        // Rolling execution: each host task belongs to a batch (0 when the step is not rolling),
        // and the step remembers which batch it is on.
        await db.schema
          .alterTable('host_task')
          .addColumn('batch', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
        await db.schema
          .alterTable('step_instance')
          .addColumn('current_batch', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
      },
    },
    '0005_file_distribution': {
      async up(db: AnyDb) {
        // Files received through generate_local_file_upload_url, and push_config_file contents.
        await db.schema
          .createTable('stored_file')
          .addColumn('path', 'text', (c) => c.primaryKey())
          .addColumn('scope_type', 'text', (c) => c.notNull())
          .addColumn('scope_id', 'text', (c) => c.notNull())
          .addColumn('creator', 'text', (c) => c.notNull())
          .addColumn('file_name', 'text', (c) => c.notNull())
          .addColumn('upload_token_hash', 'text')
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .addColumn('size', 'bigint')
          .addColumn('sha256', 'text')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('stored_file_token')
          .on('stored_file')
          .column('upload_token_hash')
          .execute();
        // One row per (host, direction, source file, destination) of a file step execution.
        await db.schema
          .createTable('file_log')
          .addColumn('step_instance_id', 'bigint', (c) => c.notNull())
          .addColumn('execute_count', 'integer', (c) => c.notNull())
          .addColumn('host_id', 'bigint', (c) => c.notNull())
          .addColumn('mode', 'integer', (c) => c.notNull())
          .addColumn('src_host_id', 'bigint', (c) => c.notNull())
          .addColumn('src_label', 'text', (c) => c.notNull())
          .addColumn('src_path', 'text', (c) => c.notNull())
          .addColumn('dest_host_id', 'bigint', (c) => c.notNull())
          .addColumn('dest_label', 'text', (c) => c.notNull())
          .addColumn('dest_path', 'text', (c) => c.notNull())
          .addColumn('status', 'integer', (c) => c.notNull())
          .addColumn('size', 'bigint', (c) => c.notNull())
          .addColumn('bytes', 'bigint', (c) => c.notNull())
          .addColumn('speed', 'bigint', (c) => c.notNull())
          .addColumn('content', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('file_log_pk', [
            'step_instance_id',
            'execute_count',
            'host_id',
            'mode',
            'src_label',
            'src_path',
            'dest_label',
            'dest_path',
          ])
          .execute();
      },
    },
    '0006_audit_log': {
      async up(db: AnyDb) {
        await withId(db.schema.createTable('audit_log'), caps)
          .addColumn('at', 'bigint', (c) => c.notNull())
          .addColumn('actor_kind', 'text', (c) => c.notNull())
          .addColumn('app_code', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('username', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('scope_type', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('scope_id', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('action', 'text', (c) => c.notNull())
          .addColumn('target', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('outcome', 'text', (c) => c.notNull())
          .addColumn('code', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('source_ip', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('detail', 'text', (c) => c.notNull().defaultTo('{}'))
          .execute();
        await db.schema.createIndex('audit_log_at').on('audit_log').column('at').execute();
      },
    },
    // Existing apps keep their hash (a hash cannot be turned back into the secret); the server
    // seals the secret the first time the app authenticates with it, or when it is set again.
    '0007_app_secret_sealed': {
      async up(db: AnyDb) {
        await db.schema
          .alterTable('app')
          .addColumn('secret_sealed', 'text', (c) => c.notNull().defaultTo(''))
          .execute();
        await db.schema
          .createTable('app_nonce')
          .addColumn('app_code', 'text', (c) => c.notNull())
          .addColumn('nonce', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('app_nonce_pk', ['app_code', 'nonce'])
          .execute();
        await db.schema.createIndex('app_nonce_expires_at').on('app_nonce').column('expires_at').execute();
      },
    },
    '0008_script_library': {
      async up(db: AnyDb) {
        // `id` orders scripts for paging (new rows land at the end); `script_id` is the public id.
        await withId(db.schema.createTable('script'), caps)
          .addColumn('script_id', 'text', (c) => c.notNull().unique())
          .addColumn('public', 'integer', (c) => c.notNull())
          .addColumn('scope_type', 'text', (c) => c.notNull())
          .addColumn('scope_id', 'text', (c) => c.notNull())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('script_language', 'integer', (c) => c.notNull())
          .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('creator', 'text', (c) => c.notNull())
          .addColumn('create_time', 'bigint', (c) => c.notNull())
          .addColumn('last_modify_user', 'text', (c) => c.notNull())
          .addColumn('last_modify_time', 'bigint', (c) => c.notNull())
          .addUniqueConstraint('script_scope_name', ['public', 'scope_type', 'scope_id', 'name'])
          .execute();
        await withId(db.schema.createTable('script_version'), caps)
          .addColumn('script_id', 'text', (c) =>
            c.notNull().references('script.script_id').onDelete('cascade'),
          )
          .addColumn('version', 'text', (c) => c.notNull())
          .addColumn('content', 'text', (c) => c.notNull())
          .addColumn('status', 'integer', (c) => c.notNull())
          .addColumn('version_desc', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('creator', 'text', (c) => c.notNull())
          .addColumn('create_time', 'bigint', (c) => c.notNull())
          .addColumn('last_modify_user', 'text', (c) => c.notNull())
          .addColumn('last_modify_time', 'bigint', (c) => c.notNull())
          .addUniqueConstraint('script_version_name', ['script_id', 'version'])
          .execute();
        // Execution accounts gain what BK-JOB's account records hold: a type, a description,
        // a sealed password (Windows and database accounts), and a database account's port and
        // the system account that runs the client.
        await db.schema
          .alterTable('account')
          .addColumn('type', 'integer', (c) => c.notNull().defaultTo(1))
          .execute();
        await db.schema
          .alterTable('account')
          .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
          .execute();
        await db.schema.alterTable('account').addColumn('password_sealed', 'text').execute();
        await db.schema.alterTable('account').addColumn('db_port', 'integer').execute();
        await db.schema.alterTable('account').addColumn('db_system_account_id', 'bigint').execute();
        await db.schema
          .alterTable('account')
          .addColumn('last_modify_user', 'text', (c) => c.notNull().defaultTo(''))
          .execute();
        await db.schema
          .alterTable('account')
          .addColumn('last_modify_time', 'bigint', (c) => c.notNull().defaultTo(0))
          .execute();
        await sql`update account set type = 2 where os_type = 'windows'`.execute(db);
        await sql`update account set last_modify_user = creator, last_modify_time = created_at`.execute(db);
        // Platform-level permissions beyond scopes, e.g. public_script_manage.
        await db.schema
          .alterTable('app')
          .addColumn('permissions', 'text', (c) => c.notNull().defaultTo('[]'))
          .execute();
      },
    },
    '0012_sealed_step_params': {
      async up(db: AnyDb) {
        // The id of the key a step's sensitive parameter is sealed under ('plain' for steps
        // stored before sealing), so a start after a key rotation finds what to reseal by index.
        await db.schema.alterTable('step_instance').addColumn('sealed_key', 'text').execute();
        await db.schema
          .createIndex('step_instance_sealed_key')
          .on('step_instance')
          .column('sealed_key')
          .execute();
        await sql`update step_instance set sealed_key = 'plain' where spec like ${'%"isParamSensitive":true%'}`.execute(
          db,
        );
      },
    },
    '0013_agent_trust': {
      async up(db: AnyDb) {
        await db.schema.alterTable('host').addColumn('agent_revoked_at', 'bigint').execute();
        await db.schema
          .createTable('server_setting')
          .addColumn('key', 'text', (c) => c.primaryKey())
          .addColumn('value', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .execute();
      },
    },
    '0010_operators': {
      async up(db: AnyDb) {
        await withId(db.schema.createTable('user_account'), caps)
          .addColumn('name', 'text', (c) => c.notNull().unique())
          .addColumn('display_name', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('password_hash', 'text', (c) => c.notNull())
          .addColumn('platform_admin', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('user_role')
          .addColumn('user_id', 'bigint', (c) =>
            c.notNull().references('user_account.id').onDelete('cascade'),
          )
          .addColumn('scope_type', 'text', (c) => c.notNull())
          .addColumn('scope_id', 'bigint', (c) => c.notNull())
          .addColumn('role', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('user_role_pk', ['user_id', 'scope_type', 'scope_id'])
          .execute();
        await db.schema
          .createTable('user_session')
          .addColumn('token_hash', 'text', (c) => c.primaryKey())
          .addColumn('user_id', 'bigint', (c) =>
            c.notNull().references('user_account.id').onDelete('cascade'),
          )
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('last_seen_at', 'bigint', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .addColumn('source_ip', 'text', (c) => c.notNull().defaultTo(''))
          .execute();
        await db.schema.createIndex('user_session_user').on('user_session').column('user_id').execute();
        await withId(db.schema.createTable('api_token'), caps)
          .addColumn('user_id', 'bigint', (c) =>
            c.notNull().references('user_account.id').onDelete('cascade'),
          )
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('token_hash', 'text', (c) => c.notNull().unique())
          .addColumn('prefix', 'text', (c) => c.notNull())
          .addColumn('scopes', 'text', (c) => c.notNull())
          .addColumn('max_role', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('expires_at', 'bigint')
          .addColumn('last_used_at', 'bigint')
          .addColumn('revoked_at', 'bigint')
          .execute();
        await db.schema.createIndex('api_token_user').on('api_token').column('user_id').execute();
      },
    },
    '0011_job_events': {
      async up(db: AnyDb) {
        // Every status change and output append of a job, in commit order, for the resumable
        // event streams; the id is the SSE event id (Last-Event-ID resumes after it).
        await withId(db.schema.createTable('job_event'), caps)
          .addColumn('job_instance_id', 'bigint', (c) => c.notNull())
          .addColumn('scope_type', 'text', (c) => c.notNull())
          .addColumn('scope_id', 'text', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('data', 'text', (c) => c.notNull())
          .addColumn('at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('job_event_job')
          .on('job_event')
          .columns(['job_instance_id', 'id'])
          .execute();
        await db.schema
          .createIndex('job_event_scope')
          .on('job_event')
          .columns(['scope_type', 'scope_id', 'id'])
          .execute();
        // Fingerprints of each finished host task's output under every set of normalisers
        // (JSON object: normaliser set -> hex digest), computed as the output arrived.
        await db.schema
          .createTable('output_fingerprint')
          .addColumn('step_instance_id', 'bigint', (c) => c.notNull())
          .addColumn('execute_count', 'integer', (c) => c.notNull())
          .addColumn('host_id', 'bigint', (c) => c.notNull())
          .addColumn('fingerprints', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('output_fingerprint_pk', ['step_instance_id', 'execute_count', 'host_id'])
          .execute();
      },
    },
    '0014_host_result_versions': {
      async up(db: AnyDb) {
        // Every commit that changes what get_job_instance_status shows of a host bumps its
        // step's hosts_version and stamps the changed rows with it, so a status reply can
        // fetch only the hosts changed since the version it has serialized.
        await db.schema
          .alterTable('step_instance')
          .addColumn('hosts_version', 'bigint', (c) => c.notNull().defaultTo(0))
          .execute();
        await db.schema
          .alterTable('host_task')
          .addColumn('version', 'bigint', (c) => c.notNull().defaultTo(0))
          .execute();
      },
    },
    '0009_job_plans': {
      async up(db: AnyDb) {
        // A template (steps + variable definitions) and its plans are JSON documents: they are
        // read and written whole, never queried by what is inside them.
        await withId(db.schema.createTable('job_template'), caps)
          .addColumn('scope_type', 'text', (c) => c.notNull())
          .addColumn('scope_id', 'text', (c) => c.notNull())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('creator', 'text', (c) => c.notNull())
          .addColumn('create_time', 'bigint', (c) => c.notNull())
          .addColumn('last_modify_user', 'text', (c) => c.notNull())
          .addColumn('last_modify_time', 'bigint', (c) => c.notNull())
          .addColumn('version', 'integer', (c) => c.notNull())
          .addColumn('body', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('job_template_scope_name')
          .on('job_template')
          .columns(['scope_type', 'scope_id', 'name'])
          .unique()
          .execute();
        await withId(db.schema.createTable('job_plan'), caps)
          .addColumn('template_id', 'bigint', (c) => c.notNull())
          .addColumn('scope_type', 'text', (c) => c.notNull())
          .addColumn('scope_id', 'text', (c) => c.notNull())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('creator', 'text', (c) => c.notNull())
          .addColumn('create_time', 'bigint', (c) => c.notNull())
          .addColumn('last_modify_user', 'text', (c) => c.notNull())
          .addColumn('last_modify_time', 'bigint', (c) => c.notNull())
          .addColumn('template_version', 'integer', (c) => c.notNull())
          .addColumn('body', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('job_plan_template_name')
          .on('job_plan')
          .columns(['template_id', 'name'])
          .unique()
          .execute();
        await db.schema.alterTable('job_instance').addColumn('job_plan_id', 'bigint').execute();
        await db.schema.alterTable('job_instance').addColumn('job_template_id', 'bigint').execute();
        // The job's variables as they stood when it started (step_instance_id 0) and after each
        // step that ran; cipher values inside are sealed.
        await withId(db.schema.createTable('job_instance_var'), caps)
          .addColumn('job_instance_id', 'bigint', (c) => c.notNull())
          .addColumn('step_instance_id', 'bigint', (c) => c.notNull())
          .addColumn('body', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('job_instance_var_job')
          .on('job_instance_var')
          .column('job_instance_id')
          .execute();
        // What each host's script left in the variables, recorded before its result.
        await db.schema
          .createTable('host_task_var')
          .addColumn('step_instance_id', 'bigint', (c) => c.notNull())
          .addColumn('execute_count', 'integer', (c) => c.notNull())
          .addColumn('host_id', 'bigint', (c) => c.notNull())
          .addColumn('body', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('host_task_var_pk', ['step_instance_id', 'execute_count', 'host_id'])
          .execute();
        // Who continued, terminated or restarted a confirmation step, when and why.
        await withId(db.schema.createTable('step_confirmation'), caps)
          .addColumn('step_instance_id', 'bigint', (c) => c.notNull())
          .addColumn('action', 'text', (c) => c.notNull())
          .addColumn('operator', 'text', (c) => c.notNull())
          .addColumn('reason', 'text', (c) => c.notNull())
          .addColumn('at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('step_confirmation_step')
          .on('step_confirmation')
          .column('step_instance_id')
          .execute();
      },
    },
    '0015_crons': {
      async up(db: AnyDb) {
        await withId(db.schema.createTable('cron_job'), caps)
          .addColumn('scope_type', 'text', (c) => c.notNull())
          .addColumn('scope_id', 'text', (c) => c.notNull())
          .addColumn('job_plan_id', 'bigint', (c) => c.notNull())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('expression', 'text')
          .addColumn('execute_time', 'bigint')
          .addColumn('time_zone', 'text', (c) => c.notNull())
          .addColumn('enabled', 'integer', (c) => c.notNull())
          .addColumn('enabled_at', 'bigint', (c) => c.notNull())
          .addColumn('end_time', 'bigint')
          .addColumn('misfire_grace_seconds', 'integer', (c) => c.notNull())
          .addColumn('vars', 'text', (c) => c.notNull())
          .addColumn('app_code', 'text', (c) => c.notNull())
          .addColumn('creator', 'text', (c) => c.notNull())
          .addColumn('create_time', 'bigint', (c) => c.notNull())
          .addColumn('last_modify_user', 'text', (c) => c.notNull())
          .addColumn('last_modify_time', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('cron_job_scope')
          .on('cron_job')
          .columns(['scope_type', 'scope_id'])
          .execute();
        await db.schema.createIndex('cron_job_plan').on('cron_job').column('job_plan_id').execute();
        await withId(db.schema.createTable('cron_firing'), caps)
          .addColumn('cron_id', 'bigint', (c) => c.notNull().references('cron_job.id').onDelete('cascade'))
          .addColumn('scheduled_time', 'bigint', (c) => c.notNull())
          .addColumn('outcome', 'text', (c) => c.notNull())
          .addColumn('job_instance_id', 'bigint')
          .addColumn('reason', 'text')
          .addColumn('recorded_at', 'bigint', (c) => c.notNull())
          .addUniqueConstraint('cron_firing_once', ['cron_id', 'scheduled_time'])
          .execute();
        await db.schema.alterTable('job_instance').addColumn('cron_id', 'bigint').execute();
        await db.schema.createIndex('job_instance_cron').on('job_instance').column('cron_id').execute();
      },
    },
    '0016_cluster': {
      async up(db: AnyDb) {
        // One row per server process start; ids are never reused and 'dead' is terminal.
        // Times are milliseconds of the database clock, so servers' clocks never compare.
        await db.schema
          .createTable('server_node')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('url', 'text', (c) => c.notNull())
          .addColumn('state', 'text', (c) => c.notNull())
          .addColumn('started_at', 'bigint', (c) => c.notNull())
          .addColumn('heartbeat_at', 'bigint', (c) => c.notNull())
          .addColumn('stopped_at', 'bigint')
          .execute();
        // Where each agent is connected now; every new session bumps the epoch.
        await db.schema
          .createTable('agent_session')
          .addColumn('host_id', 'bigint', (c) => c.primaryKey())
          .addColumn('server_id', 'text', (c) => c.notNull())
          .addColumn('epoch', 'bigint', (c) => c.notNull())
          .addColumn('state', 'text', (c) => c.notNull())
          .addColumn('last_seen', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('agent_session_server').on('agent_session').column('server_id').execute();
        // Messages for agents, delivered by whichever server holds the agent's session.
        await withId(db.schema.createTable('agent_command'), caps)
          .addColumn('host_id', 'bigint', (c) => c.notNull())
          .addColumn('type', 'text', (c) => c.notNull())
          .addColumn('step_instance_id', 'bigint')
          .addColumn('execute_count', 'integer')
          .addColumn('payload', 'text', (c) => c.notNull())
          .addColumn('sent_epoch', 'bigint')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('agent_command_host')
          .on('agent_command')
          .columns(['host_id', 'id'])
          .execute();
        await db.schema
          .createIndex('agent_command_step')
          .on('agent_command')
          .column('step_instance_id')
          .execute();
        await db.schema.alterTable('job_instance').addColumn('owner_id', 'text').execute();
        await db.schema.createIndex('job_instance_owner').on('job_instance').column('owner_id').execute();
        if (caps.name !== 'postgres') return;
        // The fence: a connection that names its server (cluster mode sets jobfleet.server_id at
        // connect) may change executions only while that server is alive. The share lock makes the
        // sweeper's 'dead' mark wait for transactions in flight and fail every later one.
        await sql`
          create function jobfleet_fence() returns trigger language plpgsql as $$
          declare me text := current_setting('jobfleet.server_id', true);
          begin
            if me is null or me = '' then return null; end if;
            perform 1 from server_node where id = me and state = 'alive' for share;
            if not found then
              raise exception 'jobfleet server % is fenced', me using errcode = 'JF001';
            end if;
            return null;
          end $$`.execute(db);
        for (const table of ['job_instance', 'step_instance', 'host_task', 'log_chunk', 'agent_command']) {
          await sql
            .raw(
              `create trigger ${table}_fence before insert or update or delete on ${table} for each statement execute function jobfleet_fence()`,
            )
            .execute(db);
        }
      },
    },
    '0017_cluster_files_and_secrets': {
      async up(db: AnyDb) {
        await db.schema
          .createTable('cluster_secret')
          .addColumn('name', 'text', (c) => c.primaryKey())
          .addColumn('value', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('stored_file_chunk')
          .addColumn('path', 'text', (c) => c.notNull())
          .addColumn('seq', 'integer', (c) => c.notNull())
          .addColumn('data', caps.binaryType, (c) => c.notNull())
          .addPrimaryKeyConstraint('stored_file_chunk_pk', ['path', 'seq'])
          .execute();
      },
    },
    '0018_scope_time_zone': {
      async up(db: AnyDb) {
        // A business's (or business set's) own IANA time zone: what its crons default to.
        await db.schema.alterTable('biz').addColumn('time_zone', 'text').execute();
        await db.schema.alterTable('biz_set').addColumn('time_zone', 'text').execute();
      },
    },
    '0018b_job_event_retention': {
      async up(db: AnyDb) {
        // Event retention removes events by age.
        await db.schema.createIndex('job_event_at').on('job_event').column('at').execute();
      },
    },
    '0020_cluster_file_offers_and_drain': {
      async up(db: AnyDb) {
        // Answers of source agents held by one server for file steps run by another.
        await withId(db.schema.createTable('file_offer'), caps)
          .addColumn('step_instance_id', 'bigint', (c) => c.notNull())
          .addColumn('execute_count', 'integer', (c) => c.notNull())
          .addColumn('host_id', 'bigint', (c) => c.notNull())
          .addColumn('payload', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('file_offer_step').on('file_offer').column('step_instance_id').execute();
        // An operator's request that a server leave the cluster (`jobfleet admin drain`).
        await db.schema.alterTable('server_node').addColumn('drain_requested_at', 'bigint').execute();
      },
    },
    '0022_log_chunk_encoding': {
      async up(db: AnyDb) {
        // How a chunk's bytes are stored (log-chunk-codec.ts); every chunk so far as sent.
        await db.schema
          .alterTable('log_chunk')
          .addColumn('encoding', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
      },
    },
    '0028_host_task_accept_cost': {
      async up(db: AnyDb) {
        // Every host task is read by its step (the primary key's prefix); nothing looks tasks up
        // by status alone, yet each insert and each status change paid for this index.
        await db.schema.dropIndex('host_task_status').execute();
        // PostgreSQL checks a foreign key row by row, through a trigger per inserted row: the
        // largest part of storing a 50,000-host step. The tasks are inserted in the transaction
        // that inserts their step, and no step is ever deleted, so the check guards nothing the
        // code does not. SQLite's check is an in-process key probe, and dropping it there would
        // rebuild the table: it stays.
        if (caps.name === 'postgres')
          await sql`alter table host_task drop constraint if exists host_task_step_instance_id_fkey`.execute(
            db,
          );
      },
    },
    '0031_host_heartbeat_room': {
      async up(db: AnyDb) {
        // Every connected agent's heartbeat updates its host row (50,000 agents: thousands of rows
        // a second). In full pages PostgreSQL writes each new row version to another page, with a
        // new entry in each of the table's four indexes: the table and its indexes grew by the
        // fleet's size every few seconds, faster than autovacuum reclaimed them, and every read of
        // hosts (a job's targets above all) got slower the longer a fleet ran. Pages half full
        // leave room for the new version beside the old one (a heap-only update, no index entry,
        // reclaimed by the next visit to the page). New pages only: an existing table is not
        // rewritten here (that would lock it); VACUUM FULL host applies it to the old pages.
        if (caps.name === 'postgres') await sql`alter table host set (fillfactor = 50)`.execute(db);
      },
    },
    '0040_away_sweep_indexes': {
      async up(db: AnyDb) {
        // The cluster's status sweep (every heartbeat interval on every server) reads the sessions
        // that passed the heartbeat timeout recently, not every host against every session.
        await sql`create index agent_session_gone on agent_session (last_seen) where state = 'gone'`.execute(
          db,
        );
        // Each server checks its connected agents against the revoked hosts every few seconds:
        // the few revoked rows, not a scan of the host table.
        await sql`create index host_revoked on host (id) where agent_revoked_at is not null`.execute(db);
      },
    },
    '0044_step_spec_lz4': {
      async up(db: AnyDb) {
        // A step's spec holds its target as sent: 50,000 host ids are ~290 KB of text, stored
        // compressed in the job's own transaction. pglz took ~15 ms of PostgreSQL CPU for it, lz4
        // ~3 ms (and reads decompress faster). New values only; a server built without lz4
        // keeps pglz.
        if (caps.name !== 'postgres') return;
        const { rows } = await sql<{ lz4: boolean }>`select 'lz4' = any(enumvals) as lz4
          from pg_settings where name = 'default_toast_compression'`.execute(db);
        if (rows[0]?.lz4)
          await sql`alter table step_instance alter column spec set compression lz4`.execute(db);
      },
    },
    '0045_missed_callbacks': {
      async up(db: AnyDb) {
        // Finished jobs whose callback a crash lost are looked for at every start: among the
        // recent ends of jobs with a callback URL, then their callbacks by job.
        await sql`create index job_instance_callback_end on job_instance (end_time)
          where callback_url is not null`.execute(db);
        await db.schema.createIndex('callback_job').on('callback').column('job_instance_id').execute();
      },
    },
    '0046_job_var_attempt': {
      async up(db: AnyDb) {
        // Which attempt of its step a variables row comes from: a step carried on after a restart
        // finds the row its attempt stored before the restart, and neither folds its hosts' values
        // into that row nor stores another.
        await db.schema
          .alterTable('job_instance_var')
          .addColumn('execute_count', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
      },
    },
    '0047_client_request_claim': {
      async up(db: AnyDb) {
        // Cluster mode: the server handling one app's client_request_id, so that a retry reaching
        // another server meanwhile waits for the first job instead of starting a second.
        await db.schema
          .createTable('client_request_claim')
          .addColumn('app_code', 'text', (c) => c.notNull())
          .addColumn('client_request_id', 'text', (c) => c.notNull())
          .addColumn('holder', 'text', (c) => c.notNull())
          .addColumn('claimed_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('client_request_claim_pk', ['app_code', 'client_request_id'])
          .execute();
      },
    },
    '0048_upload_claimed_by': {
      async up(db: AnyDb) {
        // A claim on an upload URL names the server process writing the file, so that a claim
        // left by a process that is gone (killed mid-upload) can be taken over by the next try.
        await db.schema.alterTable('stored_file').addColumn('upload_claimed_by', 'text').execute();
        if (caps.name !== 'postgres') return;
        // A cluster member declared dead may still run (paused, then resumed) after its claim was
        // taken over: the fence refuses its later writes, so two writers never mix in one file.
        for (const table of ['stored_file', 'stored_file_chunk']) {
          await sql
            .raw(
              `create trigger ${table}_fence before insert or update or delete on ${table} for each statement execute function jobfleet_fence()`,
            )
            .execute(db);
        }
      },
    },
    '0049_file_log_full_paths': {
      async up(db: AnyDb) {
        // A path too long for file_log's key (PostgreSQL's index row limit) is kept whole here,
        // with a stand-in in its key column (file-store.ts). The key and the rows stay as they
        // were, so that a server of the older version goes on writing them during a rolling
        // upgrade; and a nullable column is added without rewriting the table, however large.
        await db.schema.alterTable('file_log').addColumn('src_path_full', 'text').execute();
        await db.schema.alterTable('file_log').addColumn('dest_path_full', 'text').execute();
      },
    },
    '0050_sealed_step_webhooks': {
      async up(db: AnyDb) {
        // Confirmation steps stored their webhook URL plain: marked so that the start-up
        // reseal (found by this column's index) seals them, as 0012 did for sensitive parameters.
        // A cluster server migrates before it is alive, and the fence (0016) refuses a write to
        // step_instance of a server that is not: this transaction writes as no server.
        if (caps.name === 'postgres')
          await sql`select set_config('jobfleet.server_id', '', true)`.execute(db);
        await sql`update step_instance set sealed_key = 'plain' where type = 3 and sealed_key is null and spec like ${'%"webhookUrl":"%'}`.execute(
          db,
        );
      },
    },
    '0051_audit_log_target': {
      async up(db: AnyDb) {
        // get_job_instance_operation_list reads a job's entries by a range of their target in
        // byte order (audit-store.ts listForTarget); without this it walked every entry made
        // since the job was created. PostgreSQL's own order is the database's collation.
        if (caps.name === 'postgres')
          await sql`create index audit_log_target on audit_log (target collate "C")`.execute(db);
        else await db.schema.createIndex('audit_log_target').on('audit_log').column('target').execute();
      },
    },
    '0052_step_ip_set': {
      async up(db: AnyDb) {
        // The addresses of each step's tasks, for the job list's ip filter (step-ip-sets.ts says
        // why not an index on host_task). On SQLite an integer key is the row id: no second tree.
        await db.schema
          .createTable('step_ip_set')
          .addColumn('step_instance_id', caps.name === 'sqlite' ? 'integer' : 'bigint', (c) => c.primaryKey())
          .addColumn('ips', 'text', (c) => c.notNull())
          .execute();
        if (caps.name === 'postgres') await ipSetStorage(db);
        // Every step's set from its tasks as stored, all executions (a retry has the same hosts,
        // but what is stored is what counts). A step inserted meanwhile by a server of the older
        // version has none, and is searched through its tasks.
        const aggregate =
          caps.name === 'postgres'
            ? sql`',' || string_agg(distinct ip, ',') || ','`
            : sql`',' || group_concat(distinct ip) || ','`;
        await sql`insert into step_ip_set (step_instance_id, ips)
          select step_instance_id, ${aggregate} from host_task group by step_instance_id`.execute(db);
        // Addresses have been checked as IPv4 where hosts are made only since agent registration
        // checked them too: a host registered before may hold a comma, which a set cannot tell
        // from its separator. Then matches in sets are confirmed against the tasks.
        const { rows } = await sql`select 1 from host where ip like '%,%'
          union all select 1 from host_task where ip like '%,%' limit 1`.execute(db);
        if (rows.length > 0)
          await sql`insert into server_setting (key, value, updated_at)
            values (${IP_SETS_CONFIRMED_KEY}, 'an address holds a comma', ${Date.now()})`.execute(db);
      },
    },
    '0053_stored_file_used_at': {
      async up(db: AnyDb) {
        // Nullable, without a default: a server of the older version goes on inserting rows
        // during a rolling upgrade, and a row without it counts from its created_at.
        await db.schema.alterTable('stored_file').addColumn('used_at', 'bigint').execute();
      },
    },
    '0054_job_instance_scope_status': {
      async up(db: AnyDb) {
        // The per-scope quotas count a scope's running jobs at every accept (quota-store.ts).
        // SQLite, without statistics, read them through the scope's index on create_time: every
        // job the scope ever ran (200,000: 17 ms a count, two counts an accept).
        await db.schema
          .createIndex('job_instance_scope_status')
          .on('job_instance')
          .columns(['scope_type', 'scope_id', 'status'])
          .execute();
      },
    },
    '0055_rule_hit_time': {
      async up(db: AnyDb) {
        // Rule hits are pruned with the audit log (audit-retention.ts), oldest first: without
        // this each pass walked every hit ever recorded to find the few past the retention.
        await db.schema
          .createIndex('dangerous_rule_hit_create_time')
          .on('dangerous_rule_hit')
          .column('create_time')
          .execute();
      },
    },
  };
}

/**
 * Applies what this version's schema lacks. A database a newer version migrated (servers of
 * two versions share one database during a rolling upgrade, and an older one may restart) is
 * left as it is when it holds every migration of this version: `newer` names the ones this
 * version does not know. One that lacks some of this version's and holds unknown ones is
 * refused: which of the two came first cannot be told.
 */
export async function migrateToLatest(
  db: AnyDb,
  caps: EngineCapabilities,
): Promise<{ applied: string[]; newer: string[] }> {
  const all = migrations(caps);
  const executed = await executedMigrations(db);
  const newer = executed.filter((name) => !(name in all));
  if (newer.length > 0) {
    const missing = Object.keys(all).filter((name) => !executed.includes(name));
    if (missing.length > 0)
      throw new Error(
        `the database was migrated by a newer Jobfleet (${newer.join(', ')}) and lacks ${missing.join(', ')} of this version: run the newer version`,
      );
    return { applied: [], newer };
  }
  const { error, results } = await migratorOf(db, all).migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return {
    applied: (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName),
    newer,
  };
}

function migratorOf(db: AnyDb, all: Record<string, Migration>): Migrator {
  return new Migrator({
    db,
    provider: { getMigrations: async () => all },
    migrationTableName: 'jobfleet_migration',
    migrationLockTableName: 'jobfleet_migration_lock',
    // Migration prefixes are reserved per piece of work and pieces land in any order: a database
    // that already ran a later-numbered one still takes an earlier-numbered one added since.
    allowUnorderedMigrations: true,
  });
}

/** Migrates up to `name` and no further: the schema an older version left (tests of a migration). */
export async function migrateTo(db: AnyDb, caps: EngineCapabilities, name: string): Promise<void> {
  const { error } = await migratorOf(db, migrations(caps)).migrateTo(name);
  if (error) throw error instanceof Error ? error : new Error(String(error));
}

/** Names of the migrations the database ran (none when it was never migrated). */
async function executedMigrations(db: AnyDb): Promise<string[]> {
  const tables = await db.introspection.getTables();
  if (!tables.some((t) => t.name === 'jobfleet_migration')) return [];
  const r = await sql<{ name: string }>`select name from jobfleet_migration`.execute(db);
  return r.rows.map((x) => x.name);
}

/** Cheap round trip used by /healthz. */
export async function ping(db: AnyDb): Promise<void> {
  await sql`select 1`.execute(db);
}

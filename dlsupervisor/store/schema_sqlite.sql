-- dlsupervisor schema for SQLite: the same tables, columns and extra indexes as schema.sql
-- (MySQL), in SQLite's types.  Idempotent: `dlsupervisor initdb` runs it on every call.
--
-- Timestamps are text 'YYYY-MM-DD HH:MM:SS.fff' in UTC, so they sort and compare as text
-- (and so use the indexes); the store returns them as datetime objects.  SQLite has no
-- ON UPDATE CURRENT_TIMESTAMP: every UPDATE the store issues sets last_updated_time
-- itself, and the triggers below do it for anyone else's UPDATE (a business application
-- cancelling a task, counting a download), as MySQL would.

CREATE TABLE IF NOT EXISTS download_task_main (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  org_id INTEGER NOT NULL,
  task_name TEXT DEFAULT NULL,
  platform INTEGER NOT NULL,
  type INTEGER NOT NULL,
  sub_type INTEGER NOT NULL,
  description TEXT DEFAULT NULL,
  status INTEGER DEFAULT 0,
  top INTEGER DEFAULT 0,
  data TEXT DEFAULT NULL,
  notify INTEGER DEFAULT 0,
  remark TEXT DEFAULT NULL,
  created_by INTEGER DEFAULT 0,
  created_time TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
  last_updated_time TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX IF NOT EXISTS index_task_created_time ON download_task_main (created_time);
CREATE INDEX IF NOT EXISTS index_task_org_id_created_time ON download_task_main (org_id, created_time);
CREATE INDEX IF NOT EXISTS index_task_type ON download_task_main (type);
CREATE INDEX IF NOT EXISTS index_task_type_org_id ON download_task_main (type, org_id);
CREATE INDEX IF NOT EXISTS index_task_org_id_platform ON download_task_main (org_id, platform);
CREATE INDEX IF NOT EXISTS index_task_task_name_org_id ON download_task_main (task_name, org_id);
CREATE INDEX IF NOT EXISTS index_task_sub_type_status ON download_task_main (sub_type, status);

CREATE TABLE IF NOT EXISTS download_item (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  task_id INTEGER NOT NULL,
  org_id INTEGER NOT NULL,
  type INTEGER DEFAULT NULL,
  file_name TEXT DEFAULT NULL,
  target_id INTEGER DEFAULT NULL,
  expire_time TEXT DEFAULT NULL,
  download_times INTEGER DEFAULT NULL,
  url TEXT DEFAULT NULL,
  status INTEGER DEFAULT 0,
  data TEXT DEFAULT NULL,
  remark TEXT DEFAULT NULL,
  md5_value TEXT DEFAULT NULL,
  created_time TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
  last_updated_time TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX IF NOT EXISTS index_item_created_time ON download_item (created_time);
CREATE INDEX IF NOT EXISTS index_item_task_id ON download_item (task_id);
CREATE INDEX IF NOT EXISTS index_item_task_id_org_id ON download_item (task_id, org_id);
CREATE INDEX IF NOT EXISTS index_item_org_id_target_id ON download_item (org_id, target_id);

-- Active tasks (READY, PROCESSING) by status: dispatch and roll-up never read finished history.
CREATE INDEX IF NOT EXISTS index_task_dls_status_updated ON download_task_main (status, last_updated_time);
-- Active items by status: re-dispatch, orphan recovery, cancellation.
CREATE INDEX IF NOT EXISTS index_item_dls_status_updated ON download_item (status, last_updated_time);
-- Expiry: DONE items whose expire_time passed (or, NULL, whose file_ttl passed).
CREATE INDEX IF NOT EXISTS index_item_dls_status_expire ON download_item (status, expire_time, last_updated_time);

-- ON UPDATE CURRENT_TIMESTAMP(3) for UPDATEs that do not set last_updated_time themselves.
CREATE TRIGGER IF NOT EXISTS download_task_main_touch AFTER UPDATE ON download_task_main
FOR EACH ROW WHEN NEW.last_updated_time IS OLD.last_updated_time
BEGIN
  UPDATE download_task_main SET last_updated_time = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE id = NEW.id;
END;
CREATE TRIGGER IF NOT EXISTS download_item_touch AFTER UPDATE ON download_item
FOR EACH ROW WHEN NEW.last_updated_time IS OLD.last_updated_time
BEGIN
  UPDATE download_item SET last_updated_time = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE id = NEW.id;
END;

-- Which subtypes have live workers, when there is no Redis to hold the registrations.
CREATE TABLE IF NOT EXISTS dlsupervisor_subtype (
  sub_type INTEGER NOT NULL PRIMARY KEY,
  name TEXT NOT NULL,
  type INTEGER NOT NULL,
  queue_key TEXT NOT NULL,
  multi INTEGER NOT NULL DEFAULT 0,
  seen_time TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

-- Files the export toolkit stored, deleted by the scheduler on expiry (schema.sql says how).
CREATE TABLE IF NOT EXISTS dlsupervisor_file (
  item_id INTEGER NOT NULL PRIMARY KEY,
  storage_key TEXT NOT NULL,
  stored_time TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
  next_try TEXT DEFAULT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  deleted_time TEXT DEFAULT NULL
);
CREATE INDEX IF NOT EXISTS index_file_dls_due ON dlsupervisor_file (deleted_time, next_try);
-- Fairness (max_per_org): PROCESSING items of one org, counted before a capped claim.
CREATE INDEX IF NOT EXISTS index_item_dls_org_status ON download_item (org_id, status);
-- One row per (subtype, org) with a cap: the lock row of a capped claim (MySQL; on SQLite
-- BEGIN IMMEDIATE already runs claims one after the other).
CREATE TABLE IF NOT EXISTS dlsupervisor_org_slots (
  sub_type INTEGER NOT NULL,
  org_id INTEGER NOT NULL,
  PRIMARY KEY (sub_type, org_id)
);
-- Export progress (contract.md §9): one row per item whose export reported any, written by
-- the master at most once a second per item.
CREATE TABLE IF NOT EXISTS dlsupervisor_progress (
  item_id INTEGER NOT NULL PRIMARY KEY,
  task_id INTEGER NOT NULL,
  done INTEGER NOT NULL DEFAULT 0,
  total INTEGER DEFAULT NULL,
  updated_time TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX IF NOT EXISTS index_dls_progress_task ON dlsupervisor_progress (task_id);

-- Completion notices (contract.md §9): see schema.sql.
CREATE TABLE IF NOT EXISTS dlsupervisor_notice (
  task_id INTEGER NOT NULL,
  kind TEXT NOT NULL,
  sub_type INTEGER NOT NULL,
  status INTEGER NOT NULL,
  state INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_try TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
  created_time TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
  delivered_time TEXT DEFAULT NULL,
  last_error TEXT DEFAULT NULL,
  PRIMARY KEY (task_id, kind)
);
CREATE INDEX IF NOT EXISTS index_dls_notice_due ON dlsupervisor_notice (sub_type, state, next_try);

-- Additive counters for /metrics (schema.sql says how).
CREATE TABLE IF NOT EXISTS dlsupervisor_counter (
  sub_type INTEGER NOT NULL,
  name TEXT NOT NULL,
  value REAL NOT NULL DEFAULT 0,
  PRIMARY KEY (sub_type, name)
);

-- dlsupervisor schema for MySQL / MariaDB. Idempotent: `dlsupervisor initdb` runs it on every call.
-- The two tables are exactly the seed's (existing deployments already have them, with data);
-- what follows them is additive: indexes that keep every scheduler query on active rows,
-- and the subtype registry used when there is no Redis.

CREATE TABLE IF NOT EXISTS `download_task_main` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `org_id` bigint unsigned NOT NULL,
  `task_name` varchar(64) DEFAULT NULL COMMENT '任务名称',
  `platform` int NOT NULL COMMENT ' 生成平台 ， 1 ：cfg , 2:cti , 3 : open , 4: crm ',
  `type` int NOT NULL COMMENT '导出类型 1: 导出联系人 ， 2 ：公司对账单导出 3 ： 导出 计划item 4 ：导出 通话记录统计分析 5 ： 录音下载 6 ：信修下载 7 .通话记录加录音下载',
  `sub_type` int NOT NULL COMMENT '导出子类型 导出类型下 分出来的子类型 ',
  `description` varchar(255) DEFAULT NULL COMMENT '描述',
  `status` int DEFAULT '0' COMMENT ' 0 :任务创建中 , 1 : 文件上传中 ，2 ：文件上传完成 ,-1 :文件上传失败 3 : 任务失效  4：取消任务',
  `top` int DEFAULT '0' COMMENT '是否置顶   0：否  1：是',
  `data` varchar(1024) DEFAULT NULL COMMENT '序列化字段',
  `notify` tinyint DEFAULT '0' COMMENT '是否通知 0：否 1：是',
  `remark` varchar(256) DEFAULT NULL COMMENT '备注',
  `created_by` bigint DEFAULT '0' COMMENT '创建人 , agent org id ',
  `created_time` timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) COMMENT '创建时间',
  `last_updated_time` timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3) COMMENT '最后更新时间',
  PRIMARY KEY (`id`) USING BTREE,
  KEY `index_created_time` (`created_time`),
  KEY `index_org_id_created_time` (`org_id`,`created_time`),
  KEY `index_type` (`type`),
  KEY `index_type_org_id` (`type`,`org_id`),
  KEY `index_org_id_platform` (`org_id`,`platform`),
  KEY `index_task_name_org_id` (`task_name`,`org_id`),
  KEY `index_sub_type_status` (`sub_type`,`status`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='下载任务表';

CREATE TABLE IF NOT EXISTS `download_item` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT COMMENT '主键 ',
  `task_id` bigint NOT NULL COMMENT '主任务id',
  `org_id` bigint unsigned NOT NULL COMMENT ' 公司ID ',
  `type` int DEFAULT NULL COMMENT '下载类型。一般跟 task的 子类型相同 ',
  `file_name` varchar(256) DEFAULT NULL COMMENT '文件名称',
  `target_id` bigint DEFAULT NULL COMMENT '关联id',
  `expire_time` timestamp NULL DEFAULT NULL COMMENT '过期时间',
  `download_times` int DEFAULT NULL COMMENT '下载次数',
  `url` varchar(1024) DEFAULT NULL COMMENT '文件下载地址',
  `status` int DEFAULT '0' COMMENT '0 :未开始 ， 1: 进行中 ，2:已完成 ，3 ：失效(针对下载次数超限) -1 :任务失败  4：取消任务',
  `data` varchar(1024) DEFAULT NULL COMMENT '序列化字段',
  `remark` varchar(256) DEFAULT NULL COMMENT '备注',
  `md5_value` varchar(45) DEFAULT NULL COMMENT '文件MD5',
  `created_time` timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) COMMENT '创建时间',
  `last_updated_time` timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3) COMMENT '最后更新时间',
  PRIMARY KEY (`id`) USING BTREE,
  KEY `index_created_time` (`created_time`),
  KEY `index_task_id` (`task_id`),
  KEY `index_task_id_org_id` (`task_id`,`org_id`),
  KEY `index_org_id_target_id` (`org_id`,`target_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='下载任务明细';

-- Active tasks (READY, PROCESSING) by status: dispatch and roll-up never read finished history.
CREATE INDEX IF NOT EXISTS `index_dls_status_updated` ON `download_task_main` (`status`, `last_updated_time`);
-- Active items by status: re-dispatch, orphan recovery, cancellation.
CREATE INDEX IF NOT EXISTS `index_dls_status_updated` ON `download_item` (`status`, `last_updated_time`);
-- Expiry: DONE items whose expire_time passed (or, NULL, whose file_ttl passed).
CREATE INDEX IF NOT EXISTS `index_dls_status_expire` ON `download_item` (`status`, `expire_time`, `last_updated_time`);

-- Which subtypes have live workers, when there is no Redis to hold the registrations.
CREATE TABLE IF NOT EXISTS `dlsupervisor_subtype` (
  `sub_type` int NOT NULL,
  `name` varchar(64) NOT NULL,
  `type` int NOT NULL,
  `queue_key` varchar(128) NOT NULL,
  `multi` tinyint NOT NULL DEFAULT '0',
  `seen_time` timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (`sub_type`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='dlsupervisor: subtypes served by live workers';

-- Files the export toolkit stored (contract.md §7), so the scheduler deletes each once its item
-- is EXPIRED or its task CANCELLED: due at `next_try` (the item's expiry, or now), retried with
-- back-off while the storage is down, `deleted_time` set once gone.
CREATE TABLE IF NOT EXISTS `dlsupervisor_file` (
  `item_id` bigint unsigned NOT NULL,
  `storage_key` varchar(1024) NOT NULL,
  `stored_time` timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  `next_try` timestamp(3) NULL DEFAULT NULL,
  `attempts` int NOT NULL DEFAULT '0',
  `deleted_time` timestamp(3) NULL DEFAULT NULL,
  PRIMARY KEY (`item_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='dlsupervisor: stored files, deleted on expiry';
-- The scheduler's idle check and its deletion step read only files due now.
CREATE INDEX IF NOT EXISTS `index_dls_file_due` ON `dlsupervisor_file` (`deleted_time`, `next_try`);
-- Fairness (max_per_org): PROCESSING items of one org, counted before a capped claim.
CREATE INDEX IF NOT EXISTS `index_dls_org_status` ON `download_item` (`org_id`, `status`);
-- One row per (subtype, org) with a cap: a capped claim locks it, so two claims of one org
-- (from any supervisor) count its running items one after the other.
CREATE TABLE IF NOT EXISTS `dlsupervisor_org_slots` (
  `sub_type` int NOT NULL,
  `org_id` bigint unsigned NOT NULL,
  PRIMARY KEY (`sub_type`, `org_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='dlsupervisor: the lock row of a capped claim';
-- Export progress (contract.md §9): one row per item whose export reported any, written by
-- the master at most once a second per item.  The business application reads a task's
-- progress by task_id (the README's "Progress" section has the query).
CREATE TABLE IF NOT EXISTS `dlsupervisor_progress` (
  `item_id` bigint unsigned NOT NULL,
  `task_id` bigint NOT NULL,
  `done` bigint NOT NULL DEFAULT '0',
  `total` bigint DEFAULT NULL,
  `updated_time` timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (`item_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='dlsupervisor: progress of running exports';
CREATE INDEX IF NOT EXISTS `index_dls_progress_task` ON `dlsupervisor_progress` (`task_id`);

-- Completion notices (contract.md §9): created with the task's closing, in the same
-- transaction; one row per task and kind (`hook`: on_task_finished, `webhook`: notify_url),
-- claimed and delivered by a worker of the task's subtype.  state 0 pending, 1 delivered,
-- 2 not applicable to the subtype, -1 given up.
CREATE TABLE IF NOT EXISTS `dlsupervisor_notice` (
  `task_id` bigint NOT NULL,
  `kind` varchar(16) NOT NULL,
  `sub_type` int NOT NULL,
  `status` int NOT NULL,
  `state` int NOT NULL DEFAULT '0',
  `attempts` int NOT NULL DEFAULT '0',
  `next_try` timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  `created_time` timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  `delivered_time` timestamp(3) NULL DEFAULT NULL,
  `last_error` varchar(256) DEFAULT NULL,
  PRIMARY KEY (`task_id`, `kind`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='dlsupervisor: completion notices';
-- Due notices of a subtype: pending ones only, by when they are due.
CREATE INDEX IF NOT EXISTS `index_dls_notice_due` ON `dlsupervisor_notice` (`sub_type`, `state`, `next_try`);

-- Additive counters for /metrics (contract.md §8): item outcomes and export durations per
-- sub_type, incremented where outcomes are recorded, so they survive any process's restart.
CREATE TABLE IF NOT EXISTS `dlsupervisor_counter` (
  `sub_type` int NOT NULL,
  `name` varchar(64) NOT NULL,
  `value` double NOT NULL DEFAULT '0',
  PRIMARY KEY (`sub_type`, `name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='dlsupervisor: metric counters';

-- Additive counters for /metrics (contract.md §8): item outcomes and export durations per
-- sub_type, incremented where outcomes are recorded, so they survive any process's restart.
CREATE TABLE IF NOT EXISTS `dlsupervisor_counter` (
  `sub_type` int NOT NULL,
  `name` varchar(64) NOT NULL,
  `value` double NOT NULL DEFAULT '0',
  PRIMARY KEY (`sub_type`, `name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='dlsupervisor: metric counters';

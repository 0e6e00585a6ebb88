CREATE TABLE IF NOT EXISTS `plantroom`.schema_migrations ON CLUSTER `plant` (
    component String,
    version UInt32,
    name String,
    applied_at DateTime
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/plantroom/schema_migrations', '{replica}')
ORDER BY (component, version);

CREATE TABLE IF NOT EXISTS `plantroom`.readings_local ON CLUSTER `plant` (
    company LowCardinality(String),
    project LowCardinality(String),
    gateway LowCardinality(String),
    device String CODEC(ZSTD(1)),
    metric LowCardinality(String),
    ts_ms Int64 CODEC(Delta, ZSTD(1)),
    value Float64 CODEC(Gorilla, ZSTD(1)),
    quality UInt8 CODEC(ZSTD(1)),
    seq UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/plantroom/readings_local', '{replica}', seq)
PARTITION BY toYYYYMM(toDateTime(intDiv(ts_ms, 1000)))
ORDER BY (company, project, device, metric, ts_ms)
TTL toDateTime(intDiv(ts_ms, 1000)) + toIntervalDay(400);

CREATE TABLE IF NOT EXISTS `plantroom`.readings ON CLUSTER `plant` AS `plantroom`.readings_local
ENGINE = Distributed(`plant`, `plantroom`, readings_local, cityHash64(company, project, device));

CREATE TABLE IF NOT EXISTS `plantroom`.readings_hourly_local ON CLUSTER `plant` (
    company LowCardinality(String),
    project LowCardinality(String),
    device String CODEC(ZSTD(1)),
    metric LowCardinality(String),
    hour_ms Int64 CODEC(Delta, ZSTD(1)),
    min_v AggregateFunction(min, Float64),
    max_v AggregateFunction(max, Float64),
    first_v AggregateFunction(argMin, Float64, Int64),
    first_ts AggregateFunction(min, Int64),
    last_v AggregateFunction(argMax, Float64, Int64),
    last_ts AggregateFunction(max, Int64),
    n AggregateFunction(uniqExact, Int64)
) ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/plantroom/readings_hourly_local', '{replica}')
PARTITION BY toYYYYMM(toDateTime(intDiv(hour_ms, 1000)))
ORDER BY (company, project, device, metric, hour_ms);

CREATE TABLE IF NOT EXISTS `plantroom`.readings_hourly ON CLUSTER `plant` AS `plantroom`.readings_hourly_local
ENGINE = Distributed(`plant`, `plantroom`, readings_hourly_local, cityHash64(company, project, device));

CREATE MATERIALIZED VIEW IF NOT EXISTS `plantroom`.readings_hourly_mv ON CLUSTER `plant` TO `plantroom`.readings_hourly_local AS
SELECT
    company, project, device, metric,
    intDiv(ts_ms, 3600000) * 3600000 AS hour_ms,
    minState(value) AS min_v,
    maxState(value) AS max_v,
    argMinState(value, ts_ms) AS first_v,
    minState(ts_ms) AS first_ts,
    argMaxState(value, ts_ms) AS last_v,
    maxState(ts_ms) AS last_ts,
    uniqExactState(ts_ms) AS n
FROM `plantroom`.readings_local
WHERE quality < 2
GROUP BY company, project, device, metric, hour_ms;

CREATE TABLE IF NOT EXISTS `plantroom`.events_local ON CLUSTER `plant` (
    company LowCardinality(String),
    project LowCardinality(String),
    gateway LowCardinality(String),
    device String,
    kind LowCardinality(String),
    ts_ms Int64 CODEC(Delta, ZSTD(1)),
    seq UInt64,
    message String CODEC(ZSTD(1)),
    attrs String CODEC(ZSTD(1)),
    arrived_ms Int64
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/plantroom/events_local', '{replica}')
PARTITION BY toYYYYMM(toDateTime(intDiv(ts_ms, 1000)))
ORDER BY (company, project, gateway, kind, device, ts_ms, seq);

CREATE TABLE IF NOT EXISTS `plantroom`.events ON CLUSTER `plant` AS `plantroom`.events_local
ENGINE = Distributed(`plant`, `plantroom`, events_local, cityHash64(company, project, gateway));

CREATE TABLE IF NOT EXISTS `plantroom`.committed_batches_local ON CLUSTER `plant` (
    gateway LowCardinality(String),
    epoch UInt64,
    seq UInt64 CODEC(Delta, ZSTD(1)),
    crc UInt32,
    committed_ms Int64 CODEC(Delta, ZSTD(1))
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/plantroom/committed_batches_local', '{replica}')
PARTITION BY tuple()
ORDER BY (gateway, epoch, seq);

CREATE TABLE IF NOT EXISTS `plantroom`.committed_batches ON CLUSTER `plant` AS `plantroom`.committed_batches_local
ENGINE = Distributed(`plant`, `plantroom`, committed_batches_local, cityHash64(gateway));

CREATE TABLE IF NOT EXISTS `plantroom`.counter_steps_local ON CLUSTER `plant` (
    company LowCardinality(String),
    device String CODEC(ZSTD(1)),
    metric LowCardinality(String),
    hour_ms Int64 CODEC(Delta, ZSTD(1)),
    n Int64,
    first_ts Int64 CODEC(Delta, ZSTD(1)),
    last_ts Int64 CODEC(Delta, ZSTD(1)),
    first_v Float64 CODEC(Gorilla, ZSTD(1)),
    last_v Float64 CODEC(Gorilla, ZSTD(1)),
    fell UInt8,
    falls UInt8,
    need_kw Float64,
    computed_ms Int64
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/plantroom/counter_steps_local', '{replica}', computed_ms)
PARTITION BY toYYYYMM(toDateTime(intDiv(hour_ms, 1000)))
ORDER BY (company, device, metric, hour_ms);

CREATE TABLE IF NOT EXISTS `plantroom`.counter_steps ON CLUSTER `plant` AS `plantroom`.counter_steps_local
ENGINE = Distributed(`plant`, `plantroom`, counter_steps_local, cityHash64(company, device));

ALTER TABLE `plantroom`.readings_local ON CLUSTER `plant` ADD COLUMN IF NOT EXISTS bad_cause LowCardinality(String) DEFAULT '';

DROP TABLE IF EXISTS `plantroom`.readings ON CLUSTER `plant`;

CREATE TABLE IF NOT EXISTS `plantroom`.readings ON CLUSTER `plant` AS `plantroom`.readings_local
ENGINE = Distributed(`plant`, `plantroom`, readings_local, cityHash64(company, project, device));

ALTER TABLE `plantroom`.readings_hourly_local ON CLUSTER `plant` ADD COLUMN IF NOT EXISTS n_rows AggregateFunction(count);

ALTER TABLE `plantroom`.readings_hourly_local ON CLUSTER `plant` ADD COLUMN IF NOT EXISTS ts_sum AggregateFunction(sum, Int64);

ALTER TABLE `plantroom`.counter_steps_local ON CLUSTER `plant` ADD COLUMN IF NOT EXISTS n_rows Int64;

ALTER TABLE `plantroom`.counter_steps_local ON CLUSTER `plant` ADD COLUMN IF NOT EXISTS ts_sum Int64;

DROP TABLE IF EXISTS `plantroom`.readings_hourly ON CLUSTER `plant`;

CREATE TABLE IF NOT EXISTS `plantroom`.readings_hourly ON CLUSTER `plant` AS `plantroom`.readings_hourly_local
ENGINE = Distributed(`plant`, `plantroom`, readings_hourly_local, cityHash64(company, project, device));

DROP TABLE IF EXISTS `plantroom`.counter_steps ON CLUSTER `plant`;

CREATE TABLE IF NOT EXISTS `plantroom`.counter_steps ON CLUSTER `plant` AS `plantroom`.counter_steps_local
ENGINE = Distributed(`plant`, `plantroom`, counter_steps_local, cityHash64(company, device));

CREATE MATERIALIZED VIEW IF NOT EXISTS `plantroom`.readings_hourly_mv_next ON CLUSTER `plant` TO `plantroom`.readings_hourly_local AS
SELECT
    company, project, device, metric,
    intDiv(ts_ms, 3600000) * 3600000 AS hour_ms,
    minState(value) AS min_v,
    maxState(value) AS max_v,
    argMinState(value, ts_ms) AS first_v,
    minState(ts_ms) AS first_ts,
    argMaxState(value, ts_ms) AS last_v,
    maxState(ts_ms) AS last_ts,
    uniqExactState(ts_ms) AS n,
    countState() AS n_rows,
    sumState(ts_ms) AS ts_sum
FROM `plantroom`.readings_local
WHERE quality < 2
GROUP BY company, project, device, metric, hour_ms;

DROP TABLE IF EXISTS `plantroom`.readings_hourly_mv ON CLUSTER `plant`;

CREATE MATERIALIZED VIEW IF NOT EXISTS `plantroom`.readings_hourly_mv ON CLUSTER `plant` TO `plantroom`.readings_hourly_local AS
SELECT
    company, project, device, metric,
    intDiv(ts_ms, 3600000) * 3600000 AS hour_ms,
    minState(value) AS min_v,
    maxState(value) AS max_v,
    argMinState(value, ts_ms) AS first_v,
    minState(ts_ms) AS first_ts,
    argMaxState(value, ts_ms) AS last_v,
    maxState(ts_ms) AS last_ts,
    uniqExactState(ts_ms) AS n,
    countState() AS n_rows,
    sumState(ts_ms) AS ts_sum
FROM `plantroom`.readings_local
WHERE quality < 2
GROUP BY company, project, device, metric, hour_ms;

DROP TABLE IF EXISTS `plantroom`.readings_hourly_mv_next ON CLUSTER `plant`;

INSERT INTO `plantroom`.readings_hourly (company, project, device, metric, hour_ms, n_rows, ts_sum)
SELECT company, project, device, metric, intDiv(ts_ms, 3600000) * 3600000 AS hour_ms, countState() AS n_rows, sumState(ts_ms) AS ts_sum
FROM `plantroom`.readings
WHERE quality < 2
GROUP BY company, project, device, metric, hour_ms;

CREATE TABLE IF NOT EXISTS `plantroom`.quarantine_local ON CLUSTER `plant` (
    company LowCardinality(String),
    project LowCardinality(String),
    gateway LowCardinality(String),
    epoch UInt64,
    seq UInt64,
    kind LowCardinality(String),
    device String,
    metric String,
    ts_ms Int64,
    value Float64,
    quality UInt8,
    message String CODEC(ZSTD(1)),
    attrs String CODEC(ZSTD(1)),
    cause LowCardinality(String),
    error String CODEC(ZSTD(1)),
    isolated UInt8,
    quarantined_ms Int64
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/plantroom/quarantine_local', '{replica}')
PARTITION BY toYYYYMM(toDateTime(intDiv(quarantined_ms, 1000)))
ORDER BY (company, project, gateway, epoch, seq, kind, device, metric, ts_ms);

CREATE TABLE IF NOT EXISTS `plantroom`.quarantine ON CLUSTER `plant` AS `plantroom`.quarantine_local
ENGINE = Distributed(`plant`, `plantroom`, quarantine_local, cityHash64(company, project, gateway));

CREATE TABLE IF NOT EXISTS `plantroom`.`thing_events_local` ON CLUSTER `plant` (
    thing_id String,
    n UInt32,
    seq UInt64,
    at DateTime,
    at_ms Int64,
    company String,
    project String,
    device String,
    gateway String,
    state String,
    value Float64,
    flag UInt8
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/plantroom/thing_events_local', '{replica}', seq)
PARTITION BY toYYYYMM(at)
ORDER BY (company, project, thing_id, n);

CREATE TABLE IF NOT EXISTS `plantroom`.`thing_events` ON CLUSTER `plant` AS `plantroom`.`thing_events_local` ENGINE = Distributed(`plant`, `plantroom`, `thing_events_local`, cityHash64(company, project));

ALTER TABLE `plantroom`.`thing_events_local` ON CLUSTER `plant` ADD COLUMN IF NOT EXISTS link String;

DROP TABLE IF EXISTS `plantroom`.`thing_events` ON CLUSTER `plant`;

CREATE TABLE IF NOT EXISTS `plantroom`.`thing_events` ON CLUSTER `plant` AS `plantroom`.`thing_events_local` ENGINE = Distributed(`plant`, `plantroom`, `thing_events_local`, cityHash64(company, project));

CREATE TABLE IF NOT EXISTS `plantroom`.`thing_events_journal` ON CLUSTER `plant` (
    kind UInt8,
    id Int64 CODEC(Delta, ZSTD(1)),
    written DateTime,
    company LowCardinality(String),
    project LowCardinality(String),
    item String,
    seq UInt64,
    mark Int64,
    keys UInt32
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/plantroom/thing_events_journal', '{replica}')
PARTITION BY toYYYYMMDD(written)
ORDER BY (kind, id, item);

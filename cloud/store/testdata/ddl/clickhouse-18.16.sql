CREATE TABLE IF NOT EXISTS `plantroom`.schema_migrations (
    component String,
    version UInt32,
    name String,
    applied_at DateTime
) ENGINE = ReplacingMergeTree
ORDER BY (component, version);

CREATE TABLE IF NOT EXISTS `plantroom`.readings (
    company String,
    project String,
    gateway String,
    device String,
    metric String,
    ts_ms Int64,
    value Float64,
    quality UInt8,
    seq UInt64
) ENGINE = ReplacingMergeTree(seq)
PARTITION BY toYYYYMM(toDateTime(intDiv(ts_ms, 1000)))
ORDER BY (company, project, device, metric, ts_ms);

CREATE TABLE IF NOT EXISTS `plantroom`.readings_hourly (
    company String,
    project String,
    device String,
    metric String,
    hour_ms Int64,
    min_v AggregateFunction(min, Float64),
    max_v AggregateFunction(max, Float64),
    first_v AggregateFunction(argMin, Float64, Int64),
    first_ts AggregateFunction(min, Int64),
    last_v AggregateFunction(argMax, Float64, Int64),
    last_ts AggregateFunction(max, Int64),
    n AggregateFunction(uniqExact, Int64)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(toDateTime(intDiv(hour_ms, 1000)))
ORDER BY (company, project, device, metric, hour_ms);

CREATE MATERIALIZED VIEW IF NOT EXISTS `plantroom`.readings_hourly_mv TO `plantroom`.readings_hourly AS
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
FROM `plantroom`.readings
WHERE quality < 2
GROUP BY company, project, device, metric, hour_ms;

CREATE TABLE IF NOT EXISTS `plantroom`.events (
    company String,
    project String,
    gateway String,
    device String,
    kind String,
    ts_ms Int64,
    seq UInt64,
    message String,
    attrs String,
    arrived_ms Int64
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(toDateTime(intDiv(ts_ms, 1000)))
ORDER BY (company, project, gateway, kind, device, ts_ms, seq);

CREATE TABLE IF NOT EXISTS `plantroom`.committed_batches (
    gateway String,
    epoch UInt64,
    seq UInt64,
    crc UInt32,
    committed_ms Int64
) ENGINE = ReplacingMergeTree()
PARTITION BY tuple()
ORDER BY (gateway, epoch, seq);

CREATE TABLE IF NOT EXISTS `plantroom`.counter_steps (
    company String,
    device String,
    metric String,
    hour_ms Int64,
    n Int64,
    first_ts Int64,
    last_ts Int64,
    first_v Float64,
    last_v Float64,
    fell UInt8,
    falls UInt8,
    need_kw Float64,
    computed_ms Int64
) ENGINE = ReplacingMergeTree(computed_ms)
PARTITION BY toYYYYMM(toDateTime(intDiv(hour_ms, 1000)))
ORDER BY (company, device, metric, hour_ms);

ALTER TABLE `plantroom`.readings ADD COLUMN bad_cause String DEFAULT '';

ALTER TABLE `plantroom`.readings_hourly ADD COLUMN n_rows AggregateFunction(count);

ALTER TABLE `plantroom`.readings_hourly ADD COLUMN ts_sum AggregateFunction(sum, Int64);

ALTER TABLE `plantroom`.counter_steps ADD COLUMN n_rows Int64;

ALTER TABLE `plantroom`.counter_steps ADD COLUMN ts_sum Int64;

CREATE MATERIALIZED VIEW IF NOT EXISTS `plantroom`.readings_hourly_mv_next TO `plantroom`.readings_hourly AS
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
FROM `plantroom`.readings
WHERE quality < 2
GROUP BY company, project, device, metric, hour_ms;

DROP TABLE IF EXISTS `plantroom`.readings_hourly_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS `plantroom`.readings_hourly_mv TO `plantroom`.readings_hourly AS
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
FROM `plantroom`.readings
WHERE quality < 2
GROUP BY company, project, device, metric, hour_ms;

DROP TABLE IF EXISTS `plantroom`.readings_hourly_mv_next;

INSERT INTO `plantroom`.readings_hourly (company, project, device, metric, hour_ms, n_rows, ts_sum)
SELECT company, project, device, metric, intDiv(ts_ms, 3600000) * 3600000 AS hour_ms, countState() AS n_rows, sumState(ts_ms) AS ts_sum
FROM `plantroom`.readings
WHERE quality < 2
GROUP BY company, project, device, metric, hour_ms;

CREATE TABLE IF NOT EXISTS `plantroom`.quarantine (
    company String,
    project String,
    gateway String,
    epoch UInt64,
    seq UInt64,
    kind String,
    device String,
    metric String,
    ts_ms Int64,
    value Float64,
    quality UInt8,
    message String,
    attrs String,
    cause String,
    error String,
    isolated UInt8,
    quarantined_ms Int64
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(toDateTime(intDiv(quarantined_ms, 1000)))
ORDER BY (company, project, gateway, epoch, seq, kind, device, metric, ts_ms);

CREATE TABLE IF NOT EXISTS `plantroom`.`thing_events` (
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
) ENGINE = ReplacingMergeTree(seq)
PARTITION BY toYYYYMM(at)
ORDER BY (company, project, thing_id, n);

ALTER TABLE `plantroom`.`thing_events` ADD COLUMN link String;

CREATE TABLE IF NOT EXISTS `plantroom`.`thing_events_journal` (
    kind UInt8,
    id Int64,
    written DateTime,
    company String,
    project String,
    item String,
    seq UInt64,
    mark Int64,
    keys UInt32
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(written)
ORDER BY (kind, id, item);

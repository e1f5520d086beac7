-- learn.sql: connectd-learn(1) in BigQuery, over the table of connectd's json
-- lines (conf/bigquery-schema.json): per workload, every destination
-- host:port with its counts, and the suggested egress.connectd.io/allow
-- value (STRING_AGG).  Put in your table for `project.dataset.connectd` and
-- the time range you want; no --collapse here.
WITH lines AS (
  SELECT
    ts,
    JSON_VALUE(pod, '$.namespace') AS namespace,
    JSON_VALUE(pod, '$.name') AS pod_name,
    JSON_VALUE(pod, '$.owner.kind') AS owner_kind,
    JSON_VALUE(pod, '$.owner.name') AS owner_name,
    JSON_VALUE(pod, '$.labels."pod-template-hash"') AS template_hash,
    LOWER(RTRIM(host, '.')) AS host,
    port,
    LOWER(RTRIM(JSON_VALUE(tls, '$.sni'), '.')) AS sni,
    (status = 403 OR IFNULL(close = 'denied', FALSE)) AS denied,
    IFNULL(policy.verdict = 'would_deny', FALSE) AS would_deny
  FROM `project.dataset.connectd`
  WHERE record = 'final'
    AND JSON_TYPE(pod) = 'object'
    AND host IS NOT NULL
    AND port BETWEEN 1 AND 65535
    AND ts >= TIMESTAMP('2026-12-01T00:00:00Z')
    AND ts < TIMESTAMP('2026-12-08T00:00:00Z')
),

workloads AS (
  SELECT
    *,
    -- a ReplicaSet named <deployment>-<pod-template-hash> is its Deployment
    (
      owner_kind = 'ReplicaSet'
      AND IFNULL(template_hash, '') != ''
      AND LENGTH(owner_name) > LENGTH(template_hash) + 1
      AND ENDS_WITH(owner_name, CONCAT('-', template_hash))
    ) AS via_rs
  FROM lines
  WHERE namespace IS NOT NULL AND pod_name IS NOT NULL
),

named AS (
  SELECT
    namespace,
    ts,
    host,
    port,
    sni,
    denied,
    would_deny,
    CASE
      WHEN owner_kind IS NULL OR owner_name IS NULL THEN 'Pod'
      WHEN via_rs THEN 'Deployment'
      ELSE owner_kind
    END AS kind,
    CASE
      WHEN owner_kind IS NULL OR owner_name IS NULL THEN pod_name
      WHEN via_rs
        THEN LEFT(owner_name, LENGTH(owner_name) - LENGTH(template_hash) - 1)
      ELSE owner_name
    END AS name
  FROM workloads
),

-- the host, and a TLS hello's SNI that names another host
dests AS (
  SELECT namespace, kind, name, host AS dest, port, 'host' AS via, ts, denied, would_deny
  FROM named
  UNION ALL
  SELECT namespace, kind, name, sni AS dest, port, 'sni' AS via, ts, denied, would_deny
  FROM named
  WHERE sni IS NOT NULL AND sni != host
),

entries AS (
  SELECT
    namespace,
    kind,
    name,
    via,
    ts,
    denied,
    would_deny,
    CASE BYTE_LENGTH(SAFE.NET.IP_FROM_STRING(dest))
      WHEN 4 THEN FORMAT('%s/32:%d', NET.IP_TO_STRING(NET.IP_FROM_STRING(dest)), port)
      WHEN 16 THEN FORMAT('[%s/128]:%d', NET.IP_TO_STRING(NET.IP_FROM_STRING(dest)), port)
      ELSE FORMAT('%s:%d', dest, port)
    END AS entry
  FROM dests
),

counts AS (
  SELECT
    namespace,
    kind,
    name,
    entry,
    STRING_AGG(DISTINCT via, '+' ORDER BY via) AS via,
    COUNT(*) AS lines,
    COUNTIF(denied) AS denied,
    COUNTIF(would_deny) AS would_deny,
    MIN(ts) AS first,
    MAX(ts) AS last
  FROM entries
  GROUP BY namespace, kind, name, entry
)

SELECT
  namespace,
  kind,
  name,
  ARRAY_AGG(
    STRUCT(entry, via, lines, denied, would_deny, first, last) ORDER BY entry
  ) AS destinations,
  -- what was only ever denied is left out, as without --include-denied
  STRING_AGG(IF(lines > denied, entry, NULL), ',' ORDER BY entry) AS allow
FROM counts
GROUP BY namespace, kind, name
ORDER BY namespace, kind, name;

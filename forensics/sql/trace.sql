-- ctguard trace --athena KEY: one key's calls, reduced to one row per (network origin, API,
-- outcome) with its count and first and last time, plus the call that minted the key.
-- ctguard applies its own high-risk catalogue and network classification to these rows; the SQL
-- only groups. Rows never carry request parameters or response elements.
WITH events AS (
  SELECT
    "$path" AS path,
    try(from_iso8601_timestamp(eventtime)) AS ts,
    eventid, eventtime, eventname, eventsource, awsregion, sourceipaddress, vpcendpointid, errorcode,
    useragent, recipientaccountid, useridentity.arn AS ui_arn, useridentity.accesskeyid AS ui_key,
    responseelements
  FROM {{table}}
  WHERE {{where}}
),
-- The same event can be delivered twice (overlapping files); as the local trace does, each event
-- id counts once per relation, keeping the copy the local trace keeps (TraceEvent::order).
related AS (
  SELECT *, row_number() OVER (
    PARTITION BY nullif(trim(eventid), ''), kind
    -- Untimed copies first, as TraceEvent::order puts them.
    ORDER BY ts NULLS FIRST, coalesce(eventsource, ''), coalesce(eventname, ''), coalesce(awsregion, ''),
      coalesce(sourceipaddress, ''), coalesce(vpcendpointid, ''), coalesce(useragent, ''),
      coalesce(errorcode, ''), path) AS copy
  FROM (
    SELECT 'use' AS kind, * FROM events WHERE ui_key = '{{key}}'
    UNION ALL
    SELECT 'issued' AS kind, * FROM events WHERE strpos(responseelements, '"{{key}}"') > 0
  ) AS both_relations
)
SELECT kind, sourceipaddress, vpcendpointid, eventsource, eventname, errorcode,
  -- First and last by parsed time (text order is wrong for offsets and fractions).
  count(*) AS calls, min_by(eventtime, ts) AS first_time, max_by(eventtime, ts) AS last_time,
  max_by(awsregion, ts) AS last_region, max_by(useragent, ts) AS last_user_agent,
  max_by(ui_arn, ts) AS principal_arn, max_by(recipientaccountid, ts) AS account
FROM related
WHERE nullif(trim(eventid), '') IS NULL OR copy = 1
GROUP BY kind, sourceipaddress, vpcendpointid, eventsource, eventname, errorcode
ORDER BY kind, last_time DESC
